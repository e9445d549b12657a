import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { NAMESPACE_HEADER, SOURCE_WORKLOAD_HEADER } from './gateway.ts';

/** The header a demo pod names itself in (the contract with the pod runtime). */
export const POD_HEADER = 'x-sandbox-pod';

export interface MeshRequest {
  /** The service as callers write it: `reviews`, `reviews.bookinfo`, an FQDN, with or without port. */
  host: string;
  /** Default `/`. */
  path?: string;
  /** Default GET. */
  method?: string;
  /** The caller's namespace. Default `default`. */
  namespace?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Default 10s. */
  timeoutMs?: number;
  /** Reported as source_workload. Default `sandbox-load`. */
  sourceWorkload?: string;
}

export interface MeshResponse {
  status: number;
  /** The `x-sandbox-pod` header: the pod that answered, when one did. */
  pod?: string;
  headers: IncomingHttpHeaders;
  body: string;
}

const sharedAgent = new Agent({ keepAlive: true, maxSockets: 256 });

/** One request through the gateway to a mesh service (node:http, since fetch may not set Host). */
export function meshRequest(
  gatewayUrl: string,
  r: MeshRequest,
  agent: Agent = sharedAgent,
): Promise<MeshResponse> {
  const u = new URL(gatewayUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: u.hostname,
        port: u.port,
        method: r.method ?? 'GET',
        path: r.path ?? '/',
        agent,
        timeout: r.timeoutMs ?? 10_000,
        headers: {
          ...r.headers,
          host: r.host,
          [NAMESPACE_HEADER]: r.namespace ?? 'default',
          [SOURCE_WORKLOAD_HEADER]: r.sourceWorkload ?? 'sandbox-load',
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const pod = res.headers[POD_HEADER];
          resolve({
            status: res.statusCode ?? 0,
            ...(typeof pod === 'string' ? { pod } : {}),
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`no answer from the gateway within ${r.timeoutMs ?? 10_000}ms`)),
    );
    req.on('error', reject);
    req.end(r.body);
  });
}

export interface SampleOptions extends Omit<MeshRequest, 'timeoutMs'> {
  /** Requests to send. Default 100; at most 100,000. */
  n?: number;
  /** Requests in flight at once. Default 10. */
  concurrency?: number;
  /** Per request. Default 5s. */
  timeoutMs?: number;
}

export interface Sample {
  /** Answers by the pod that gave them (`-` when the gateway answered itself). */
  byPod: Record<string, number>;
  byStatus: Record<string, number>;
  /** Requests without an HTTP answer. */
  failed: number;
}

/**
 * Sends n requests through the gateway and counts who answered: how a test (or the demo) judges
 * where users' traffic goes, e.g. that after a rollback every request reaches a stable pod.
 */
export async function sampleTraffic(gatewayUrl: string, opts: SampleOptions): Promise<Sample> {
  const n = opts.n ?? 100;
  if (!Number.isInteger(n) || n < 1 || n > 100_000)
    throw new Error(`sample n ${n} must be a whole number from 1 to 100000`);
  const concurrency = Math.max(1, Math.min(opts.concurrency ?? 10, n));
  const out: Sample = { byPod: {}, byStatus: {}, failed: 0 };
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) {
          next++;
          try {
            const r = await meshRequest(gatewayUrl, { ...opts, timeoutMs: opts.timeoutMs ?? 5_000 }, agent);
            const pod = r.pod ?? '-';
            out.byPod[pod] = (out.byPod[pod] ?? 0) + 1;
            out.byStatus[r.status] = (out.byStatus[r.status] ?? 0) + 1;
          } catch {
            out.failed++;
          }
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return out;
}

export interface LoadTarget {
  host: string;
  path?: string;
  namespace?: string;
  /** Relative share of the load among targets. Default 1. */
  weight?: number;
}

export interface LoadOptions {
  /** The gateway's URL. */
  gatewayUrl: string;
  targets: LoadTarget[];
  /** Requests per second across all targets. Default 20; at most 2000. */
  rate?: number;
  /** A header set on a share (0..1) of requests, for A/B routes. Default none. */
  testHeader?: { name: string; value: string; share: number };
  /** Per request. Default 5s. */
  timeoutMs?: number;
  /** Requests waiting for an answer at most; a request due beyond it is dropped and counted. Default 200. */
  maxInFlight?: number;
  /** Stop after this many requests. Default: no limit. */
  maxRequests?: number;
  /** Stop after this long. Default: no limit. */
  durationMs?: number;
  /** source_workload of the requests. Default `sandbox-load`. */
  sourceWorkload?: string;
  /** Called with every answer (e.g. to time how long until every request reaches stable). Default none. */
  onAnswer?: (a: LoadAnswer) => void;
}

export interface LoadAnswer {
  /** The pod that answered; undefined when the gateway answered itself or nothing came back. */
  pod?: string;
  /** 0 when no HTTP answer came. */
  status: number;
  host: string;
  /** Whether the request carried the test header. */
  test: boolean;
  /** When the answer came (Date.now()). */
  at: number;
}

export interface LoadStats {
  sent: number;
  completed: number;
  /** Requests that got no HTTP answer (timeout, connection error). */
  failed: number;
  /** Requests not sent: maxInFlight were waiting, or the clock fell more than 200 ms behind. */
  dropped: number;
  /** Answers by the pod that gave them (`-` when the gateway answered itself). */
  byPod: Record<string, number>;
  byStatus: Record<string, number>;
  /** Answers to requests with the test header, by pod. */
  testByPod: Record<string, number>;
}

export interface LoadGenerator {
  stats(): LoadStats;
  /** Zeroes the counts (the load goes on). */
  reset(): void;
  setRate(rate: number): void;
  setTestShare(share: number): void;
  /** Resolves when the load ends (stop, maxRequests or durationMs) and every request has settled. */
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

const MAX_RATE = 2000;
const TICK_MS = 10;
const CATCH_UP_MS = 200;
const MAX_TARGETS = 100;

function checkRate(rate: number): number {
  if (!Number.isFinite(rate) || rate <= 0 || rate > MAX_RATE)
    throw new Error(
      `load rate ${rate} must be a number of requests per second above 0 and at most ${MAX_RATE}`,
    );
  return rate;
}

function checkShare(share: number): number {
  if (!Number.isFinite(share) || share < 0 || share > 1)
    throw new Error(`testHeader.share ${share} must be from 0 to 1`);
  return share;
}

function empty(): LoadStats {
  return { sent: 0, completed: 0, failed: 0, dropped: 0, byPod: {}, byStatus: {}, testByPod: {} };
}

/**
 * A steady request rate through the gateway: requests are spread over targets by weight and sent on
 * a 10 ms clock, so the rate holds however long each answer takes (bounded by maxInFlight).
 */
export function startLoad(opts: LoadOptions): LoadGenerator {
  if (!opts.gatewayUrl || !/^https?:\/\//.test(opts.gatewayUrl))
    throw new Error(
      `load: gatewayUrl must be the gateway's http:// URL (got ${JSON.stringify(opts.gatewayUrl)})`,
    );
  if (opts.targets.length === 0 || opts.targets.length > MAX_TARGETS)
    throw new Error(`load: give from 1 to ${MAX_TARGETS} target hosts (got ${opts.targets.length})`);
  for (const [i, t] of opts.targets.entries())
    if (!t.host || (t.weight !== undefined && !(Number.isFinite(t.weight) && t.weight >= 0)))
      throw new Error(`load: targets[${i}] needs a host and a weight >= 0 (got ${JSON.stringify(t)})`);
  if (opts.targets.every((t) => (t.weight ?? 1) === 0)) throw new Error('load: the target weights total 0');
  const maxInFlightOpt = opts.maxInFlight ?? 200;
  if (!Number.isInteger(maxInFlightOpt) || maxInFlightOpt < 1 || maxInFlightOpt > 10_000)
    throw new Error(`load: maxInFlight ${maxInFlightOpt} must be a whole number from 1 to 10000`);
  let rate = checkRate(opts.rate ?? 20);
  let share = checkShare(opts.testHeader?.share ?? 0);
  const maxInFlight = maxInFlightOpt;
  const agent = new Agent({ keepAlive: true, maxSockets: maxInFlight });
  const totalWeight = opts.targets.reduce((s, t) => s + (t.weight ?? 1), 0);
  let stats = empty();
  let inFlight = 0;
  let issued = 0;
  let epoch = performance.now();
  let scheduled = 0;
  let stopped = false;
  const started = performance.now();
  let settle: () => void = () => {};
  const done = new Promise<void>((r) => {
    settle = r;
  });
  const finishIfIdle = () => {
    if (stopped && inFlight === 0) {
      agent.destroy();
      settle();
    }
  };

  const pick = (): LoadTarget => {
    let x = Math.random() * totalWeight;
    for (const t of opts.targets) {
      x -= t.weight ?? 1;
      if (x < 0) return t;
    }
    return opts.targets[opts.targets.length - 1]!;
  };

  const send = () => {
    if (inFlight >= maxInFlight) {
      stats.dropped++;
      return;
    }
    const t = pick();
    const test = opts.testHeader && Math.random() < share ? opts.testHeader : undefined;
    const s = stats;
    s.sent++;
    issued++;
    inFlight++;
    meshRequest(
      opts.gatewayUrl,
      {
        host: t.host,
        path: t.path ?? '/',
        ...(t.namespace ? { namespace: t.namespace } : {}),
        headers: test ? { [test.name]: test.value } : {},
        timeoutMs: opts.timeoutMs ?? 5_000,
        sourceWorkload: opts.sourceWorkload ?? 'sandbox-load',
      },
      agent,
    )
      .then(
        (r) => {
          s.completed++;
          const pod = r.pod ?? '-';
          s.byPod[pod] = (s.byPod[pod] ?? 0) + 1;
          s.byStatus[r.status] = (s.byStatus[r.status] ?? 0) + 1;
          if (test) s.testByPod[pod] = (s.testByPod[pod] ?? 0) + 1;
          opts.onAnswer?.({
            ...(r.pod ? { pod: r.pod } : {}),
            status: r.status,
            host: t.host,
            test: !!test,
            at: Date.now(),
          });
        },
        // Only the request's failure lands here: an exception in onAnswer is the caller's, not a failed request.
        () => {
          s.failed++;
          opts.onAnswer?.({ status: 0, host: t.host, test: !!test, at: Date.now() });
        },
      )
      .finally(() => {
        inFlight--;
        finishIfIdle();
      });
  };

  const timer = setInterval(() => {
    const now = performance.now();
    if (opts.durationMs !== undefined && now - started >= opts.durationMs) return void stop();
    const due = Math.floor(((now - epoch) / 1000) * rate);
    // After a stall (a busy event loop) it catches up at most CATCH_UP_MS of requests: a steady
    // rate, not a burst. What it gives up is counted as dropped.
    const burst = Math.ceil((rate * CATCH_UP_MS) / 1000) + 1;
    if (due - scheduled > burst) {
      stats.dropped += due - scheduled - burst;
      scheduled = due - burst;
    }
    let n = due - scheduled;
    while (n-- > 0) {
      if (opts.maxRequests !== undefined && issued >= opts.maxRequests) return void stop();
      scheduled++;
      send();
    }
  }, TICK_MS);

  const restartClock = () => {
    epoch = performance.now();
    scheduled = 0;
  };

  function stop(): Promise<void> {
    if (!stopped) {
      stopped = true;
      clearInterval(timer);
      finishIfIdle();
    }
    return done;
  }

  return {
    stats: () => structuredClone(stats),
    reset() {
      stats = empty();
    },
    setRate(r) {
      rate = checkRate(r);
      restartClock();
    },
    setTestShare(s) {
      share = checkShare(s);
    },
    done,
    stop,
  };
}
