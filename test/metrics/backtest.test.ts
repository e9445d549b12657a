import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backtest, parseBacktestWindow, whenOf } from '../../src/metrics/backtest.ts';
import { createPrometheusProvider, type PrometheusProvider } from '../../src/metrics/prometheus.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import {
  DAY,
  END,
  HISTORY_CHECKS,
  HISTORY_CTX,
  START,
  startHistoryPrometheus,
  weekday,
} from '../helpers/history.ts';

/** The history: see test/helpers/history.ts (a week of a stable with daily latency bumps and nightly dips). */
describe('backtest against a real Prometheus holding a week of history', () => {
  let prom: ManagedProcess;
  let provider: PrometheusProvider;
  beforeAll(async () => {
    prom = await startHistoryPrometheus();
    provider = createPrometheusProvider({ url: prom.url, timeout: '20s' });
  }, 150_000);
  afterAll(async () => {
    await prom?.stop();
  });

  const run = (maxPoints?: number) =>
    backtest({
      provider,
      checks: HISTORY_CHECKS,
      ctx: HISTORY_CTX,
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
      checks: [HISTORY_CHECKS[0]!],
      ctx: HISTORY_CTX,
      start: new Date(END - 3_600_000),
      end: new Date(END),
      stepSeconds: 10,
      scrapeIntervalSeconds: 60,
    });
    expect(r.stepSeconds).toBe(60);
    expect(r.evaluations).toBe(61);
    expect(r.notes[0]).toMatch(/step raised from 10s to the scrape interval \(60s\)/);
  });

  it('without a scrape interval, measures it from the data (one sample a minute here)', async () => {
    const r = await backtest({
      provider,
      checks: [HISTORY_CHECKS[0]!],
      ctx: HISTORY_CTX,
      start: new Date(END - 3_600_000),
      end: new Date(END),
      stepSeconds: 10,
    });
    expect(r.stepSeconds).toBe(60);
    expect(r.notes[0]).toMatch(/step raised from 10s to the scrape interval \(60s, measured from the data\)/);
  });

  it('every range query has a deadline', async () => {
    await expect(
      backtest({
        provider: {
          ...provider,
          queryRange: (_q, o) =>
            new Promise((_, reject) => o.signal?.addEventListener('abort', () => reject(o.signal?.reason))),
        },
        checks: [HISTORY_CHECKS[0]!],
        ctx: HISTORY_CTX,
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
