import { isMetricError, MetricError } from './errors.ts';
import { judgeMannWhitney } from './judges/mann-whitney.ts';
import { judgeRelative } from './judges/relative.ts';
import { judgeThreshold } from './judges/threshold.ts';
import { compileQuery, renderQuery } from './render.ts';
import { type CompiledCheck, compileCheck, type MetricCheck, type MetricCheckInput } from './spec.ts';
import { BUILTIN_TEMPLATES, type Reporter } from './templates.ts';
import type { AnalysisContext, AnalysisReport, MetricProvider, MetricResult, Verdict } from './types.ts';
import { singleSeries, singleValue } from './values.ts';

export interface RunAnalysisOptions {
  provider: MetricProvider;
  /** The checks: spec entries (compiled here) or checks compiled by compileChecks. */
  checks: readonly (MetricCheckInput | MetricCheck | CompiledCheck)[];
  ctx: AnalysisContext;
  /** Fewer canary requests than this in the window make every check inconclusive. Default 0 (no gate). */
  minRequests?: number;
  /** Reporter of the built-in templates and of the request count, unless a check says otherwise. Default source. */
  reporter?: Reporter;
  /** PromQL counting the canary's requests in the window, instead of the request-count template (variables allowed). */
  requestCountQuery?: string;
  /** Evaluation time. Default now. */
  now?: Date;
  signal?: AbortSignal;
  /** critical: run only the critical checks (the engine's guard between steps). Default all. */
  only?: 'all' | 'critical';
  /** Budget of one check, its retries included. Default 15s. */
  checkTimeoutMs?: number;
}

function isCompiled(c: MetricCheckInput | MetricCheck | CompiledCheck): c is CompiledCheck {
  return 'source' in c && 'judge' in c && 'path' in c;
}

interface Side {
  query: string;
  run(signal: AbortSignal): Promise<number>;
}

/** The PromQL of a check for one subset (used by the backtest too); throws MetricError('config') when it cannot be rendered. */
export function promqlFor(
  check: CompiledCheck,
  ctx: AnalysisContext,
  subject: 'canary' | 'stable',
  reporter: Reporter,
  windowSeconds: number,
): string {
  if (check.source.kind === 'template') {
    const s = check.source;
    return s.template.promql(ctx, subject === 'canary' ? ctx.canary : ctx.stable, windowSeconds, {
      quantile: s.quantile,
      reporter: s.reporter ?? reporter,
    });
  }
  return renderQuery(check.source.query, ctx, subject, windowSeconds);
}

function canMeasureStable(check: CompiledCheck): boolean {
  return check.source.kind === 'template' || check.source.query.usesSubject;
}

function inconclusive(check: CompiledCheck, e: unknown, side?: 'stable'): MetricResult {
  const prefix = side ? 'stable: ' : '';
  if (isMetricError(e)) {
    return {
      name: check.name,
      critical: check.critical,
      verdict: 'inconclusive',
      reason: e.code,
      message: `${prefix}${e.message}`,
      query: e.details.query,
    };
  }
  const aborted = (e as Error)?.name === 'TimeoutError' || (e as Error)?.name === 'AbortError';
  return {
    name: check.name,
    critical: check.critical,
    verdict: 'inconclusive',
    reason: aborted ? 'timeout' : 'error',
    message: aborted
      ? `${check.label}: no answer in time (${(e as Error).message})`
      : `${check.label}: ${String(e)}`,
  };
}

async function evaluate(
  check: CompiledCheck,
  provider: MetricProvider,
  ctx: AnalysisContext,
  reporter: Reporter,
  now: Date,
  signal: AbortSignal,
): Promise<MetricResult> {
  const base = { name: check.name, critical: check.critical };
  const window = check.intervalSeconds ?? ctx.intervalSeconds;
  const d = { label: check.label, unit: check.unit };
  const instant = (subject: 'canary' | 'stable'): Side => {
    const query = promqlFor(check, ctx, subject, reporter, window);
    return {
      query,
      run: async (s) => singleValue(await provider.query(query, { time: now, signal: s }), query),
    };
  };
  let canaryQuery: string | undefined;
  try {
    const j = check.judge;
    if (j.type === 'threshold') {
      const canary = instant('canary');
      canaryQuery = canary.query;
      const stable = canMeasureStable(check) ? instant('stable') : undefined;
      // The stable value is context for the reader only; its absence never changes the verdict.
      const [value, stableValue] = await Promise.all([
        canary.run(signal),
        stable?.run(signal).catch(() => undefined),
      ]);
      const o = judgeThreshold(value, j, d, stableValue);
      return { ...base, ...o, value, stableValue, query: canary.query, stableQuery: stable?.query };
    }
    if (j.type === 'relative') {
      const canary = instant('canary');
      canaryQuery = canary.query;
      const stable = instant('stable');
      const [c, s] = await Promise.allSettled([canary.run(signal), stable.run(signal)]);
      if (c.status === 'rejected') return { ...inconclusive(check, c.reason), stableQuery: stable.query };
      if (s.status === 'rejected') {
        return { ...inconclusive(check, s.reason, 'stable'), value: c.value, query: canary.query };
      }
      const o = judgeRelative(c.value, s.value, j, d);
      return {
        ...base,
        ...o,
        value: c.value,
        stableValue: s.value,
        query: canary.query,
        stableQuery: stable.query,
      };
    }
    const rangeSeconds = (j.range ?? window * 1000) / 1000;
    const start = new Date(now.getTime() - rangeSeconds * 1000);
    const range = (subject: 'canary' | 'stable') => {
      const query = promqlFor(check, ctx, subject, reporter, j.window / 1000);
      return {
        query,
        run: async (s: AbortSignal) =>
          singleSeries(
            await provider.queryRange(query, { start, end: now, stepSeconds: j.step / 1000, signal: s }),
            query,
          ),
      };
    };
    const canary = range('canary');
    canaryQuery = canary.query;
    const stable = range('stable');
    const [c, s] = await Promise.allSettled([canary.run(signal), stable.run(signal)]);
    if (c.status === 'rejected') return { ...inconclusive(check, c.reason), stableQuery: stable.query };
    if (s.status === 'rejected') return { ...inconclusive(check, s.reason, 'stable'), query: canary.query };
    const o = judgeMannWhitney(c.value, s.value, j, d);
    return {
      ...base,
      ...o,
      value: o.details?.canaryMedian as number | undefined,
      stableValue: o.details?.stableMedian as number | undefined,
      query: canary.query,
      stableQuery: stable.query,
    };
  } catch (e) {
    const r = inconclusive(check, e);
    return { ...r, query: r.query ?? canaryQuery };
  }
}

/**
 * Worst first over the checks that count: any fail → fail; else any inconclusive → inconclusive;
 * else pass. Dry-run results never count, so an empty list, or one of dry-run checks only, passes.
 */
export function overallVerdict(results: readonly MetricResult[]): Verdict {
  const counted = results.filter((r) => !r.dryRun);
  if (counted.some((r) => r.verdict === 'fail')) return 'fail';
  if (counted.some((r) => r.verdict === 'inconclusive')) return 'inconclusive';
  return 'pass';
}

/** The results that decide: every one but the dry-run checks'. */
export function decisive(results: readonly MetricResult[]): MetricResult[] {
  return results.filter((r) => !r.dryRun);
}

function withTimeout<T>(
  ms: number,
  outer: AbortSignal | undefined,
  fn: (s: AbortSignal) => Promise<T>,
): Promise<T> {
  const timeout = AbortSignal.timeout(ms);
  const signal = outer ? AbortSignal.any([outer, timeout]) : timeout;
  // A provider that ignores the signal must not hold the analysis past its budget.
  return Promise.race([
    fn(signal),
    new Promise<never>((_, reject) => {
      if (signal.aborted) reject(signal.reason);
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    }),
  ]);
}

/**
 * Runs every check in parallel (each within its budget), the sample-size gate, and returns every
 * result with the overall verdict. Missing data never passes: no values, too few requests or an
 * unreachable Prometheus give "inconclusive". A failed check fails the analysis (critical or not;
 * `critical` marks the checks the guard runs between steps). A dry-run check is run and judged the
 * same way and marked `dryRun`; the verdict leaves it out, whatever it says, errors included.
 */
export async function runAnalysis(o: RunAnalysisOptions): Promise<AnalysisReport> {
  const started = Date.now();
  const now = o.now ?? new Date();
  const reporter = o.reporter ?? 'source';
  const minRequests = o.minRequests ?? 0;
  const budget = o.checkTimeoutMs ?? 15_000;
  const known = {
    vars: o.ctx.vars ?? {},
    stableLabels: Object.keys(o.ctx.stable.labels),
    canaryLabels: Object.keys(o.ctx.canary.labels),
  };
  const prepared = o.checks.map((c, i) => {
    if (isCompiled(c)) return { check: c };
    const r = compileCheck(c, i, known);
    const name = (c as { name?: string }).name ?? `#${i}`;
    return r.check
      ? { check: r.check }
      : {
          failed: {
            name,
            critical: (c as { critical?: boolean }).critical ?? false,
            verdict: 'inconclusive' as const,
            ...((c as { dryRun?: boolean }).dryRun ? { dryRun: true } : {}),
            reason: 'config',
            message: r.issues.map((x) => `${x.path}: ${x.message}`).join('; '),
          },
        };
  });
  const selected = prepared.filter((p) => o.only !== 'critical' || (p.check ?? p.failed)!.critical);

  const gate =
    minRequests > 0
      ? withTimeout(budget, o.signal, async (signal) => {
          let query: string;
          try {
            if (o.requestCountQuery) {
              const q = compileQuery(o.requestCountQuery, { vars: Object.keys(o.ctx.vars ?? {}) });
              if (q.errors.length)
                throw new MetricError('config', `requestCountQuery: ${q.errors.join('; ')}`);
              query = renderQuery(q.query, o.ctx, 'canary');
            } else {
              query = BUILTIN_TEMPLATES.get('request-count')!.promql(
                o.ctx,
                o.ctx.canary,
                o.ctx.intervalSeconds,
                {
                  quantile: 0.99,
                  reporter,
                },
              );
            }
          } catch (e) {
            return { error: e };
          }
          try {
            return { count: singleValue(await o.provider.query(query, { time: now, signal }), query), query };
          } catch (e) {
            // No series at all is the plainest case of no traffic.
            if (isMetricError(e, 'no-data')) return { count: 0, query, noSeries: true };
            return { error: e };
          }
        }).catch((e: unknown) => ({ error: e }))
      : undefined;

  let results = await Promise.all(
    selected.map((p) =>
      p.failed
        ? Promise.resolve<MetricResult>(p.failed)
        : withTimeout(budget, o.signal, (signal) =>
            evaluate(p.check!, o.provider, o.ctx, reporter, now, signal),
          ).catch((e: unknown) => inconclusive(p.check!, e)),
    ),
  );

  let requests: number | undefined;
  const g = gate ? await gate : undefined;
  if (g) {
    if ('error' in g) {
      const why = isMetricError(g.error) ? g.error.message : String(g.error);
      // Without a sample size no verdict is trustworthy, a failing one included. A check that is
      // already inconclusive keeps its own reason (often the same outage).
      const reason = isMetricError(g.error) ? g.error.code : 'error';
      results = results.map((r) =>
        r.verdict === 'inconclusive'
          ? r
          : { ...r, verdict: 'inconclusive', reason, message: `request count unknown: ${why}` },
      );
    } else {
      requests = Math.round(g.count);
      if (requests < minRequests) {
        const hint = g.noSeries ? ` (no series for the canary — check the labels; query: ${g.query})` : '';
        const message = `insufficient traffic: ${requests} of ${minRequests} requests${hint}`;
        results = results.map((r) => ({
          ...r,
          verdict: 'inconclusive',
          reason: 'insufficient-traffic',
          message,
        }));
      }
    }
  }
  // Dry-run checks are judged like the others, gate included, and marked so no verdict counts them.
  results = results.map((r, i) => (selected[i]!.check?.dryRun ? { ...r, dryRun: true } : r));
  return {
    verdict: overallVerdict(results),
    results,
    at: now.getTime(),
    requests,
    minRequests,
    durationMs: Date.now() - started,
  };
}
