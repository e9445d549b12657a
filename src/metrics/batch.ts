import type { MetricProvider, QueryResult } from './types.ts';

/**
 * Batched guard checks: the built-in Istio templates of many rollouts, due within the same short
 * window, become one Prometheus query per metric, window, reporter and namespace —
 * `sum by (destination_service_name, destination_version, ...) (rate(istio_requests_total{...}[w]))`
 * — and each rollout's value is computed in vane from its own groups. Queries per guard interval then
 * grow with the templates and namespaces in use, not with the rollouts. A query this layer does not
 * recognise (custom PromQL, histogram quantiles, range queries) goes to Prometheus as it is.
 */

/** Options of the batching provider. */
export interface BatchOptions {
  /** How long the first query of a batch waits for others, ms. Default 100. */
  windowMs?: number;
  /** Most rollouts' atoms in one grouped query. Default 2000. */
  maxBatch?: number;
}

/** `sum(rate(metric{matchers}[window]))` or with increase: the building block of the Istio templates. */
interface Atom {
  fn: 'rate' | 'increase';
  metric: string;
  window: string;
  /** Matchers shared by the batch (reporter, namespace, response_code ...), in their text order. */
  shared: string;
  /** Equality matchers that tell one rollout's series apart (service, version, workload). */
  own: [string, string][];
}

/** A recognised query: one atom, or atom / atom, optionally * a number. */
interface Parsed {
  atoms: Atom[];
  combine: (v: (number | undefined)[]) => number | undefined;
}

/** Labels that identify a rollout's series; anything else in a selector is shared by the batch. */
const OWN_LABELS = new Set([
  'destination_service_name',
  'destination_version',
  'destination_canonical_revision',
  'destination_workload',
]);

const ATOM = String.raw`sum\((rate|increase)\(([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^{}]*)\}\[([0-9]+[smhd])\]\)\)`;
const ONE = new RegExp(`^${ATOM}$`);
const RATIO = new RegExp(`^${ATOM} / ${ATOM}(?: \\* ([0-9.]+))?$`);
// a matcher: name, operator, double-quoted value (escapes allowed)
const MATCHER = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)/y;

function atomOf(fn: string, metric: string, selector: string, window: string): Atom | undefined {
  const shared: string[] = [];
  const own: [string, string][] = [];
  MATCHER.lastIndex = 0;
  let consumed = 0;
  for (;;) {
    const m = MATCHER.exec(selector);
    if (!m) break;
    consumed = MATCHER.lastIndex;
    const [, name, op, value] = m;
    if (op === '=' && OWN_LABELS.has(name!)) {
      // an escaped value is left to Prometheus: comparing it here would need its unescaping
      if (value!.includes('\\')) return undefined;
      own.push([name!, value!]);
    } else shared.push(`${name}${op}"${value}"`);
    if (consumed >= selector.length) break;
  }
  if (consumed < selector.trimEnd().length) return undefined;
  if (!own.some(([n]) => n === 'destination_service_name')) return undefined;
  return { fn: fn as Atom['fn'], metric, window, shared: shared.join(','), own };
}

/** The query as atoms and how to combine their values, or undefined when it is not batchable. */
export function parseBatchable(promql: string): Parsed | undefined {
  const q = promql.trim();
  const one = ONE.exec(q);
  if (one) {
    const a = atomOf(one[1]!, one[2]!, one[3]!, one[4]!);
    return a ? { atoms: [a], combine: ([v]) => v } : undefined;
  }
  const ratio = RATIO.exec(q);
  if (ratio) {
    const a = atomOf(ratio[1]!, ratio[2]!, ratio[3]!, ratio[4]!);
    const b = atomOf(ratio[5]!, ratio[6]!, ratio[7]!, ratio[8]!);
    if (!a || !b) return undefined;
    const k = ratio[9] === undefined ? 1 : Number(ratio[9]);
    if (!Number.isFinite(k)) return undefined;
    // Prometheus: an empty side gives an empty result; x/0 is ±Inf, 0/0 NaN — as JS divides
    return {
      atoms: [a, b],
      combine: ([x, y]) => (x === undefined || y === undefined ? undefined : (x / y) * k),
    };
  }
  return undefined;
}

interface Waiter {
  atom: Atom;
  resolve: (v: number | undefined) => void;
  reject: (e: unknown) => void;
}

interface Batch {
  key: string;
  by: string[];
  atom: Atom;
  waiters: Waiter[];
  time?: Date;
  timer: NodeJS.Timeout;
}

const labelKey = (pairs: [string, string][]) => JSON.stringify(pairs);

/** The provider with the Istio templates' queries batched; everything else passes through. */
export function createBatchingProvider(
  inner: MetricProvider,
  opts: BatchOptions = {},
): MetricProvider & {
  /** Grouped queries sent and atoms they answered (for figures). */
  stats(): { grouped: number; atoms: number; passedThrough: number };
} {
  const windowMs = opts.windowMs ?? 100;
  const maxBatch = opts.maxBatch ?? 2000;
  const open = new Map<string, Batch>();
  let grouped = 0;
  let atoms = 0;
  let passedThrough = 0;

  async function flush(b: Batch): Promise<void> {
    clearTimeout(b.timer);
    if (open.get(b.key) === b) open.delete(b.key);
    const { atom, by } = b;
    const selector = atom.shared ? `{${atom.shared}}` : '';
    const promql = `sum by (${by.join(', ')}) (${atom.fn}(${atom.metric}${selector}[${atom.window}]))`;
    grouped++;
    atoms += b.waiters.length;
    try {
      const r = await inner.query(promql, b.time ? { time: b.time } : {});
      if (r.type !== 'vector')
        throw new Error(`a grouped query answered a ${r.type}, not a vector: ${promql}`);
      const values = new Map<string, number>();
      for (const s of r.series) values.set(labelKey(by.map((l) => [l, s.labels[l] ?? ''])), s.value);
      for (const w of b.waiters) {
        const own = new Map(w.atom.own);
        w.resolve(values.get(labelKey(by.map((l) => [l, own.get(l) ?? '']))));
      }
    } catch (e) {
      for (const w of b.waiters) w.reject(e);
    }
  }

  function atomValue(atom: Atom, time: Date | undefined): Promise<number | undefined> {
    const by = atom.own.map(([n]) => n).sort();
    const key = JSON.stringify([atom.fn, atom.metric, atom.window, atom.shared, by]);
    return new Promise((resolve, reject) => {
      let b = open.get(key);
      if (!b) {
        const batch: Batch = {
          key,
          by,
          atom,
          waiters: [],
          ...(time ? { time } : {}),
          timer: setTimeout(() => void flush(batch), windowMs),
        };
        open.set(key, batch);
        b = batch;
      }
      b.waiters.push({ atom, resolve, reject });
      if (b.waiters.length >= maxBatch) void flush(b);
    });
  }

  return {
    async query(promql, o) {
      const parsed = parseBatchable(promql);
      if (!parsed) {
        passedThrough++;
        return inner.query(promql, o);
      }
      o?.signal?.throwIfAborted();
      // Both sides of a ratio at one instant: the batches they open share this call's time.
      const time = o?.time ?? new Date();
      const all = Promise.all(parsed.atoms.map((a) => atomValue(a, time)));
      // the caller's deadline still holds: its check gives up when the signal fires, the batch goes on
      const vs = o?.signal
        ? await Promise.race([
            all,
            new Promise<never>((_, reject) =>
              o.signal!.addEventListener('abort', () => reject(o.signal!.reason), { once: true }),
            ),
          ])
        : await all;
      const v = parsed.combine(vs);
      return {
        type: 'vector',
        series: v === undefined ? [] : [{ labels: {}, value: v }],
        warnings: [],
      } satisfies QueryResult;
    },
    queryRange: (q, o) => {
      passedThrough++;
      return inner.queryRange(q, o);
    },
    isOnline: () => inner.isOnline(),
    stats: () => ({ grouped, atoms, passedThrough }),
  };
}
