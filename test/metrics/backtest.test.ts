import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backtest, parseBacktestWindow, whenOf } from '../../src/metrics/backtest.ts';
import { createPrometheusProvider, type PrometheusProvider } from '../../src/metrics/prometheus.ts';
import type { MetricCheckInput } from '../../src/metrics/spec.ts';
import type { AnalysisContext } from '../../src/metrics/types.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { startTestPrometheus } from '../helpers/services.ts';

/**
 * A week of a stable's Istio metrics, written into a real Prometheus with promtool (the Debian
 * Prometheus 2.42 offers `promtool tsdb create-blocks-from openmetrics`; its remote-write receiver
 * refuses samples older than the head block, so it cannot write last week):
 * - one sample a minute, 10 req/s, 0.1% errors, every request 100 ms;
 * - every day from 14:00 to 14:15 a latency bump: 200, 800, 200, 900, 450, 700, 200 ms on the 7 days,
 *   so p99 crosses 500 ms on three of them (800, 900, 700) and comes within 2.5 ms on one (450: in
 *   the 250–500 bucket Prometheus interpolates p99 to 497.5);
 * - every night from 02:00 to 02:30, 0.05 req/s: fewer than minRequests in the window.
 */
const DAY = 86_400_000;
const END = Math.floor(Date.now() / DAY) * DAY; // today 00:00 UTC: the window is the 7 whole days before
const START = END - 7 * DAY;
const BUMPS = [200, 800, 200, 900, 450, 700, 200];
const BUCKETS = [50, 100, 250, 500, 1000, 2500];
const ctx: AnalysisContext = {
  namespace: 'shop',
  host: 'cart.shop.svc.cluster.local',
  service: 'cart',
  stable: { subset: 'v1', labels: { app: 'cart', version: 'v1' } },
  canary: { subset: 'v2', labels: { app: 'cart', version: 'v2' } },
  intervalSeconds: 300,
};
const CHECKS: MetricCheckInput[] = [
  { name: 'success-rate', template: 'request-success-rate', critical: true, thresholdRange: { min: 99 } },
  { name: 'p99-latency', template: 'request-duration', thresholdRange: { max: 500 } },
  {
    name: 'p50-latency',
    template: 'request-duration',
    options: { quantile: 0.5 },
    dryRun: true,
    thresholdRange: { max: 150 },
  },
  { name: 'latency-vs-stable', template: 'request-duration', compare: { maxIncrease: 0.2 } },
];

/** The minute ending at `t` (ms): requests, latency. */
function minute(t: number): { requests: number; latency: number } {
  const inDay = t - Math.floor((t - 1) / DAY) * DAY; // (0, DAY]: a sample covers the minute before it
  const day = Math.floor((t - 1 - START) / DAY);
  const dip = inDay > 2 * 3_600_000 && inDay <= 2.5 * 3_600_000;
  const bump = inDay > 14 * 3_600_000 && inDay <= 14.25 * 3_600_000 && day >= 0 && day < 7;
  return { requests: (dip ? 0.05 : 10) * 60, latency: bump ? BUMPS[day]! : 100 };
}

function openMetrics(): string {
  const from = START - 2 * 3_600_000;
  const to = END + 10 * 60_000;
  const sel =
    'reporter="source",destination_service_namespace="shop",destination_service_name="cart",destination_app="cart",destination_version="v1"';
  const lines: string[] = ['# TYPE istio_requests counter'];
  const ok: string[] = [];
  const err: string[] = [];
  const buckets: string[][] = [...BUCKETS, '+Inf'].map(() => []);
  let good = 0;
  let bad = 0;
  const cum = new Array(BUCKETS.length + 1).fill(0);
  for (let t = from; t <= to; t += 60_000) {
    const m = minute(t);
    good += m.requests * 0.999;
    bad += m.requests * 0.001;
    BUCKETS.forEach((le, i) => {
      if (m.latency <= le) cum[i] += m.requests;
    });
    cum[BUCKETS.length] += m.requests;
    const s = t / 1000;
    ok.push(`istio_requests_total{${sel},response_code="200"} ${good} ${s}`);
    err.push(`istio_requests_total{${sel},response_code="500"} ${bad} ${s}`);
    buckets.forEach((b, i) => {
      b.push(
        `istio_request_duration_milliseconds_bucket{${sel},le="${i < BUCKETS.length ? BUCKETS[i] : '+Inf'}"} ${cum[i]} ${s}`,
      );
    });
  }
  lines.push(...ok, ...err, '# TYPE istio_request_duration_milliseconds histogram');
  for (const b of buckets) lines.push(...b);
  lines.push('# EOF');
  return `${lines.join('\n')}\n`;
}

const weekday = (ms: number) =>
  new Date(ms).toLocaleDateString('en-GB', { weekday: 'long', timeZone: 'UTC' });

describe('backtest against a real Prometheus holding a week of history', () => {
  let prom: ManagedProcess;
  let provider: PrometheusProvider;
  beforeAll(async () => {
    const work = mkdtempSync(join(tmpdir(), 'vane-backtest-'));
    try {
      writeFileSync(join(work, 'week.om'), openMetrics());
      prom = await startTestPrometheus([], '15s', {
        retention: '30d',
        prepare: (data) =>
          execFileSync(
            'promtool',
            ['tsdb', 'create-blocks-from', 'openmetrics', '-q', join(work, 'week.om'), data],
            {
              timeout: 90_000,
            },
          ),
      });
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    provider = createPrometheusProvider({ url: prom.url, timeout: '20s' });
  }, 150_000);
  afterAll(async () => {
    await prom?.stop();
  });

  const run = (maxPoints?: number) =>
    backtest({
      provider,
      checks: CHECKS,
      ctx,
      start: new Date(START),
      end: new Date(END),
      stepSeconds: 300,
      scrapeIntervalSeconds: 60,
      minRequests: 50,
      failureThreshold: 2,
      ...(maxPoints ? { maxPoints } : {}),
    });

  it('counts passes, failures and inconclusive evaluations per metric, and the rollbacks an identical release would have had', async () => {
    const r = await run(500);
    // 7 days of 5-minute steps, both ends included; 2017 points, 500 a query: 5 queries per series; the request count and 4 checks.
    expect(r.evaluations).toBe(7 * 288 + 1);
    expect(r.queries).toBe(5 * 5);
    const by = Object.fromEntries(r.metrics.map((m) => [m.name, m]));
    // The night dips: 02:05 … 02:30 each night, 6 evaluations, 7 nights.
    for (const m of r.metrics) expect(m.inconclusive, m.name).toBe(42);
    expect(by['p99-latency']).toMatchObject({ failed: 9, passed: r.evaluations - 42 - 9 });
    expect(by['success-rate']).toMatchObject({ failed: 0, passed: r.evaluations - 42 });
    expect(by['p50-latency']).toMatchObject({ failed: 21, dryRun: true });
    expect(by['latency-vs-stable']).toMatchObject({ failed: 0, passed: r.evaluations - 42 });
    expect(by['p99-latency']!.failures.map((f) => f.when)).toEqual(
      [1, 3, 5].flatMap((d) => ['14:05', '14:10', '14:15'].map((hm) => `${weekday(START + d * DAY)} ${hm}`)),
    );
    expect(by['p99-latency']!.closest).toMatchObject({ bound: 500 });
    expect(by['p99-latency']!.closest!.value).toBeCloseTo(497.5, 3);
    expect(by['p99-latency']!.closest!.when).toMatch(
      new RegExp(`^${weekday(START + 4 * DAY)} 14:(05|10|15)$`),
    );

    // failureThreshold 2: the second failing step of each bump rolls back.
    expect(r.rollbacks.map((e) => e.when)).toEqual([1, 3, 5].map((d) => `${weekday(START + d * DAY)} 14:10`));
    expect(r.gaps).toHaveLength(7);
    expect(r.gaps[0]).toMatchObject({ from: START + 2 * 3_600_000 + 5 * 60_000, evaluations: 6 });
    expect(r.stalls).toHaveLength(7); // 25 minutes inconclusive > the 10-minute deadline, each night

    const [d1, d3, d5] = [1, 3, 5].map((d) => weekday(START + d * DAY));
    expect(r.verdict).toMatch(
      new RegExp(
        `^would have rolled back an identical release 3 times in 7 days: p99-latency > 500ms on ${d1} 14:10, p99-latency > 500ms on ${d3} 14:10, p99-latency > 500ms on ${d5} 14:10; `,
      ),
    );
    expect(r.verdict).toContain(
      'it would have waited past the inconclusive deadline 7 times (too little traffic): ',
    );
    expect(r.verdict).toMatch(/closest pass: p99 latency 498ms <= 500ms on \w+ 14:\d\d \(p99-latency\)/);
    expect(r.verdict).toContain('7 gaps below minRequests (50), the longest 30m from');
    expect(r.verdict).toContain('dry run, not counted: p50-latency failed 21 times');
    console.log(`backtest verdict: ${r.verdict}`);
  });

  it('gives the same answer in one query per series when the window fits in 11,000 points', async () => {
    const [small, big] = [await run(500), await run()];
    expect(big.queries).toBe(5);
    expect(big.metrics).toEqual(small.metrics);
    expect(big.verdict).toBe(small.verdict);
  });

  it('never steps below the scrape interval, and says so', async () => {
    const r = await backtest({
      provider,
      checks: [CHECKS[0]!],
      ctx,
      start: new Date(END - 3_600_000),
      end: new Date(END),
      stepSeconds: 10,
      scrapeIntervalSeconds: 60,
    });
    expect(r.stepSeconds).toBe(60);
    expect(r.evaluations).toBe(61);
    expect(r.notes[0]).toMatch(/step raised from 10s to the scrape interval \(60s\)/);
  });

  it('every range query has a deadline', async () => {
    await expect(
      backtest({
        provider: {
          ...provider,
          queryRange: (_q, o) =>
            new Promise((_, reject) => o.signal?.addEventListener('abort', () => reject(o.signal?.reason))),
        },
        checks: [CHECKS[0]!],
        ctx,
        start: new Date(END - 3_600_000),
        end: new Date(END),
        stepSeconds: 60,
        callTimeoutMs: 300,
      }),
    ).rejects.toThrow(/timeout|aborted/i);
  });
});

describe('backtest windows and dates', () => {
  it('parses 7d, 36h, 90m and refuses the rest naming the field', () => {
    expect(parseBacktestWindow('7d')).toBe(7 * DAY);
    expect(parseBacktestWindow('36h')).toBe(36 * 3_600_000);
    expect(parseBacktestWindow('90m')).toBe(90 * 60_000);
    expect(() => parseBacktestWindow('1w')).toThrow(/window: '1w' is not a window; use e\.g\. 7d/);
    expect(() => parseBacktestWindow('40d')).toThrow(/at most 31d/);
  });
  it('names a time by weekday and clock time', () => {
    expect(whenOf(Date.UTC(2026, 10, 24, 14, 5))).toBe('Tuesday 14:05');
  });
});
