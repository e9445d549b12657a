import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAnalysis } from '../../src/metrics/analysis.ts';
import { createPrometheusProvider, type PrometheusProvider } from '../../src/metrics/prometheus.ts';
import type { MetricCheckInput } from '../../src/metrics/spec.ts';
import { BUILTIN_TEMPLATES } from '../../src/metrics/templates.ts';
import type { AnalysisContext } from '../../src/metrics/types.ts';
import { singleValue } from '../../src/metrics/values.ts';
import { freePort, type ManagedProcess } from '../../src/sandbox/processes.ts';
import { expectedQuantile, type IstioExporter, startIstioExporter } from '../helpers/istio-exporter.ts';
import { eventually, startTestPrometheus } from '../helpers/services.ts';

/** Window of every query: 10 scrapes at 1s. */
const WINDOW = 10;

function ctxFor(canaryVersion: string, stableVersion = 'v1'): AnalysisContext {
  return {
    namespace: 'bookinfo',
    host: 'reviews.bookinfo.svc.cluster.local',
    service: 'reviews',
    stable: { subset: 'stable', labels: { app: 'reviews', version: stableVersion } },
    canary: { subset: 'canary', labels: { app: 'reviews', version: canaryVersion } },
    intervalSeconds: WINDOW,
  };
}

const STANDARD: MetricCheckInput[] = [
  { name: 'success-rate', template: 'request-success-rate', thresholdRange: { min: 99 }, critical: true },
  { name: 'p99-latency', template: 'request-duration', thresholdRange: { max: 400 } },
  { name: 'latency-vs-stable', template: 'request-duration', compare: { to: 'stable', maxIncrease: 0.2 } },
];

describe('analysis against a real Prometheus scraping an Istio-like exporter', () => {
  let prom: ManagedProcess;
  let exporter: IstioExporter;
  let provider: PrometheusProvider;

  /**
   * The time of the newest scrape. Querying there keeps rate()'s window edge on a sample: under CPU
   * load a late scrape would otherwise make Prometheus extrapolate less and read several percent low.
   */
  const lastScrape = async (): Promise<Date> => {
    const q = 'max(timestamp(istio_requests_total))';
    return new Date(singleValue(await provider.query(q), q) * 1000);
  };

  const value = async (
    template: string,
    ctx: AnalysisContext,
    opts: { quantile?: number; reporter?: 'source' | 'destination' } = {},
  ) => {
    const q = BUILTIN_TEMPLATES.get(template)!.promql(ctx, ctx.canary, WINDOW, {
      quantile: opts.quantile ?? 0.99,
      reporter: opts.reporter ?? 'source',
    });
    return singleValue(await provider.query(q, { time: await lastScrape() }), q);
  };

  beforeAll(async () => {
    exporter = await startIstioExporter();
    exporter.setSubset('v1', { rps: 40, errorRate: 0.001, latencyMs: 40 }); // stable
    exporter.setSubset('v2', { rps: 20, errorRate: 0.002, latencyMs: 45 }); // good canary
    exporter.setSubset('v3', { rps: 20, errorRate: 0.1, latencyMs: 300 }); // bad canary
    exporter.setSubset('v4', { rps: 0 }); // deployed, no traffic
    exporter.setSubset('v5', { rps: 0.5 }); // a trickle
    prom = await startTestPrometheus([{ job: 'istio', target: exporter.hostPort }]);
    provider = createPrometheusProvider({ url: prom.url });
    // Wait until the window holds a full interval of samples, or rate() under-reads.
    await eventually(
      async () =>
        (await value('request-count', ctxFor('v1')).catch(() => 0)) > 0.93 * 40 * WINDOW ? true : undefined,
      60_000,
      250,
    );
  });
  afterAll(async () => {
    provider?.close();
    await exporter?.stop();
    await prom?.stop();
  });

  it('built-in templates measure the known rates, error ratios and latency quantiles (tolerance: 5% for rates, 0.05 points for success rate, 1% for quantiles)', async () => {
    const bad = ctxFor('v3');
    expect(await value('request-success-rate', bad)).toBeCloseTo(90, 1);
    expect(await value('request-success-rate', bad, { reporter: 'destination' })).toBeCloseTo(90, 1);
    expect(await value('request-success-rate', ctxFor('v1'))).toBeCloseTo(99.9, 1);
    const p99 = await value('request-duration', bad);
    expect(Math.abs(p99 - expectedQuantile(0.99, 300)) / expectedQuantile(0.99, 300)).toBeLessThan(0.01);
    expect(expectedQuantile(0.99, 300)).toBe(497.5);
    const p50 = await value('request-duration', bad, { quantile: 0.5 });
    expect(Math.abs(p50 - 375) / 375).toBeLessThan(0.01);
    expect(Math.abs((await value('request-duration', ctxFor('v1'))) - 49.75)).toBeLessThan(0.5);
    expect(Math.abs((await value('request-rate', bad)) - 20) / 20).toBeLessThan(0.05);
    expect(Math.abs((await value('request-count', bad)) - 20 * WINDOW) / (20 * WINDOW)).toBeLessThan(0.07);
  });

  it('passes a good canary with messages that show value, bound and the stable', async () => {
    const r = await runAnalysis({
      now: await lastScrape(),
      provider,
      checks: STANDARD,
      ctx: ctxFor('v2'),
      minRequests: 50,
    });
    expect(r.verdict).toBe('pass');
    expect(r.requests).toBeGreaterThan(150);
    const [sr, p99, rel] = r.results;
    expect(sr).toMatchObject({ name: 'success-rate', verdict: 'pass', critical: true, bounds: { min: 99 } });
    expect(sr!.message).toMatch(/^success rate 99\.8\d?% >= 99% \(stable 99\.9\d?%\)$/);
    expect(sr!.query).toContain('destination_version="v2"');
    expect(sr!.stableQuery).toContain('destination_version="v1"');
    expect(p99!.message).toMatch(/^p99 latency 49\.\dms <= 400ms \(stable 49\.\dms\)$/);
    expect(rel!.verdict).toBe('pass');
    expect(rel!.message).toMatch(
      /^p99 latency 49\.\dms is equal to stable|is 0(\.\d+)?% (above|below) stable/,
    );
  });

  it('fails a bad canary and says by how much', async () => {
    const r = await runAnalysis({
      now: await lastScrape(),
      provider,
      checks: STANDARD,
      ctx: ctxFor('v3'),
      minRequests: 50,
    });
    expect(r.verdict).toBe('fail');
    expect(r.results.map((x) => x.verdict)).toEqual(['fail', 'fail', 'fail']);
    expect(r.results[0]!.message).toMatch(
      /^success rate (89\.9\d?|90(\.0\d?)?)% < 99% \(stable 99\.9\d?%\)$/,
    );
    expect(r.results[0]!.value).toBeCloseTo(90, 1);
    expect(r.results[0]!.stableValue).toBeCloseTo(99.9, 1);
    expect(r.results[1]!.message).toMatch(/^p99 latency 49[78]ms > 400ms \(stable 49\.\dms\)$/);
    expect(r.results[2]!.message).toMatch(
      /^p99 latency 49[78]ms is 9\d\d% above stable 49\.\dms \(max \+20%\)$/,
    );
    expect(r.results[2]!.bounds).toEqual({ kind: 'ratio', maxIncrease: 0.2 });
  });

  it('runs only the critical checks for the guard between steps', async () => {
    const r = await runAnalysis({
      now: await lastScrape(),
      provider,
      checks: STANDARD,
      ctx: ctxFor('v3'),
      minRequests: 50,
      only: 'critical',
    });
    expect(r.results.map((x) => x.name)).toEqual(['success-rate']);
    expect(r.verdict).toBe('fail');
  });

  it('never passes with too little traffic: every check is inconclusive with the count', async () => {
    const r = await runAnalysis({
      now: await lastScrape(),
      provider,
      checks: STANDARD,
      ctx: ctxFor('v5'),
      minRequests: 50,
    });
    expect(r.verdict).toBe('inconclusive');
    for (const x of r.results) {
      expect(x.verdict).toBe('inconclusive');
      expect(x.reason).toBe('insufficient-traffic');
      expect(x.message).toMatch(/^insufficient traffic: [3-7] of 50 requests$/);
    }
    const none = await runAnalysis({
      now: await lastScrape(),
      provider,
      checks: STANDARD,
      ctx: ctxFor('v9'),
      minRequests: 50,
    });
    expect(none.results[0]!.message).toMatch(
      /^insufficient traffic: 0 of 50 requests \(no series for the canary — check the labels; query: sum\(increase\(istio_requests_total\{reporter="source",.*destination_version="v9"/,
    );
  });

  it('reports no data, NaN, several series and a bad query as inconclusive with the reason', async () => {
    const noData = await runAnalysis({
      now: await lastScrape(),
      provider,
      checks: STANDARD.slice(0, 1),
      ctx: ctxFor('v9'),
    });
    expect(noData.results[0]).toMatchObject({ verdict: 'inconclusive', reason: 'no-data' });
    expect(noData.results[0]!.message).toMatch(
      /^no data: the query returned no series — check the labels \(query: sum\(rate/,
    );
    const idle = await runAnalysis({
      now: await lastScrape(),
      provider,
      checks: STANDARD.slice(0, 1),
      ctx: ctxFor('v4'),
    });
    expect(idle.results[0]).toMatchObject({ verdict: 'inconclusive', reason: 'nan' });
    const custom = await runAnalysis({
      now: await lastScrape(),
      provider,
      ctx: ctxFor('v3'),
      checks: [
        {
          name: 'several',
          query: 'istio_requests_total{destination_version="{{ canary.labels.version }}"}',
          thresholdRange: { min: 0 },
        },
        {
          name: 'broken',
          query: 'sum(rate(istio_requests_total[{{ interval }}])',
          thresholdRange: { min: 0 },
        },
      ],
    });
    expect(custom.results.map((x) => x.reason)).toEqual(['multiple-series', 'bad-query']);
    expect(custom.results[1]!.message).toMatch(/^Prometheus rejected the query: .*parse error/);
    expect(custom.verdict).toBe('inconclusive');
  });

  it('makes every check inconclusive — not failed, not passed — when Prometheus is unreachable', async () => {
    const down = createPrometheusProvider({
      url: `http://127.0.0.1:${await freePort()}`,
      retries: 1,
      retryBackoff: '10ms',
    });
    const r = await runAnalysis({ provider: down, checks: STANDARD, ctx: ctxFor('v3'), minRequests: 50 });
    expect(r.verdict).toBe('inconclusive');
    for (const x of r.results) {
      expect(x.verdict).toBe('inconclusive');
      expect(x.message).toMatch(/unreachable: ECONNREFUSED/);
      expect(x.reason).toBe('unreachable');
    }
  });

  it('runs custom PromQL with variables, for the canary and, through {{ subject }}, for the stable', async () => {
    const r = await runAnalysis({
      now: await lastScrape(),
      provider,
      ctx: { ...ctxFor('v3'), vars: { ns: 'bookinfo' } },
      checks: [
        {
          name: 'canary-rps',
          unit: 'req/s',
          query:
            'sum(rate(istio_requests_total{reporter="source",destination_service_namespace="{{ vars.ns }}",destination_version="{{ canary.labels.version }}"}[{{ interval }}]))',
          thresholdRange: { min: 15, max: 25 },
        },
        {
          name: 'rps-vs-stable',
          query:
            'sum(rate(istio_requests_total{reporter="source",destination_version="{{ subject.labels.version }}"}[{{ interval }}]))',
          compare: { maxDecrease: 0.6 },
        },
      ],
    });
    expect(r.results[0]!.message).toMatch(
      /^canary-rps (19\.\d|20(\.\d)?) req\/s >= 15 req\/s and <= 25 req\/s$/,
    );
    expect(r.results[0]!.query).toContain('[10s]');
    expect(r.results[1]!.message).toMatch(
      /^rps-vs-stable (19\.\d|20(\.\d)?) is 5\d% below stable (39\.\d|40(\.\d)?) \(allowed -60%\)$/,
    );
    expect(r.verdict).toBe('pass');
  });

  it('Mann-Whitney over range queries: fails a slower canary, passes an equal one', async () => {
    const mw: MetricCheckInput = {
      name: 'latency-mw',
      template: 'request-duration',
      judge: { type: 'mann-whitney', direction: 'increase', step: '1s', window: '3s', minPoints: 5 },
    };
    const errorsMw: MetricCheckInput = {
      name: 'success-mw',
      template: 'request-success-rate',
      judge: { type: 'mann-whitney', direction: 'decrease', step: '1s', window: '3s', effectSize: 0.01 },
    };
    const bad = await runAnalysis({
      now: await lastScrape(),
      provider,
      checks: [mw, errorsMw],
      ctx: ctxFor('v3'),
    });
    expect(bad.results.map((x) => x.verdict)).toEqual(['fail', 'fail']);
    expect(bad.results[0]!.message).toMatch(
      /^p99 latency higher on the canary: median 49[78]ms vs stable 49\.\dms \(\+9\d\d%\), p=.* < 0\.05$/,
    );
    expect(Number(bad.results[0]!.details!.canaryPoints)).toBeGreaterThanOrEqual(8);
    const good = await runAnalysis({ now: await lastScrape(), provider, checks: [mw], ctx: ctxFor('v2') });
    expect(good.results[0]!.verdict).toBe('pass');
  });
});
