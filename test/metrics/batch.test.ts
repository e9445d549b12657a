import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBatchingProvider, parseBatchable } from '../../src/metrics/batch.ts';
import { createPrometheusProvider, type PrometheusProvider } from '../../src/metrics/prometheus.ts';
import { BUILTIN_TEMPLATES } from '../../src/metrics/templates.ts';
import type { AnalysisContext, MetricProvider, QueryResult } from '../../src/metrics/types.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { type IstioExporter, startIstioExporter } from '../helpers/istio-exporter.ts';
import { eventually, startTestPrometheus } from '../helpers/services.ts';

/**
 * Batched guard checks against a real Prometheus: the built-in templates' queries of many services
 * become one grouped query per metric and namespace, and every service gets the value its own query
 * would give; custom PromQL goes through as it is.
 */
const SERVICES = ['alpha', 'beta', 'gamma', 'delta'];
let exporter: IstioExporter;
let prom: ManagedProcess;
let real: PrometheusProvider;
const sent: string[] = [];
let counted: MetricProvider;

beforeAll(async () => {
  exporter = await startIstioExporter({ namespace: 'shop', services: SERVICES, histograms: false });
  exporter.setSubset('v1', { rps: 40 });
  exporter.setSubset('v2', { rps: 40 });
  exporter.setServiceSubset('gamma', 'v2', { rps: 40, errorRate: 0.25 });
  prom = await startTestPrometheus([{ job: 'istio', target: exporter.hostPort }]);
  real = createPrometheusProvider({ url: prom.url, timeout: 5_000 });
  counted = {
    query: (q, o) => {
      sent.push(q);
      return real.query(q, o);
    },
    queryRange: (q, o) => real.queryRange(q, o),
    isOnline: () => real.isOnline(),
  };
  const probe = BUILTIN_TEMPLATES.get('request-success-rate')!.promql(
    ctxOf('gamma'),
    ctxOf('gamma').canary,
    10,
    {
      reporter: 'source',
      quantile: 0.99,
    },
  );
  // Prometheus needs a few scrapes before rate() answers.
  await eventually(
    async () => {
      const r = await real.query(probe);
      return r.type === 'vector' && r.series.length > 0 && r.series[0]!.value < 90 ? true : undefined;
    },
    40_000,
    500,
  );
}, 60_000);

afterAll(async () => {
  real?.close();
  await prom?.stop();
  await exporter?.stop();
});

function ctxOf(service: string): AnalysisContext {
  return {
    namespace: 'shop',
    host: service,
    service,
    stable: { subset: 'v1', labels: { version: 'v1' } },
    canary: { subset: 'v2', labels: { version: 'v2' } },
    intervalSeconds: 10,
  };
}

const firstValue = (r: QueryResult) => (r.type === 'vector' ? r.series[0]?.value : undefined);

describe('batched guard checks', () => {
  it('recognises the built-in request templates, and not custom PromQL', () => {
    const ctx = ctxOf('alpha');
    for (const name of ['request-success-rate', 'request-rate', 'request-count']) {
      const q = BUILTIN_TEMPLATES.get(name)!.promql(ctx, ctx.canary, 30, {
        reporter: 'source',
        quantile: 0.99,
      });
      expect(parseBatchable(q), name).toBeDefined();
    }
    const p99 = BUILTIN_TEMPLATES.get('request-duration')!.promql(ctx, ctx.canary, 30, {
      reporter: 'source',
      quantile: 0.99,
    });
    expect(parseBatchable(p99)).toBeUndefined();
    expect(parseBatchable('sum(rate(my_errors_total{app="alpha"}[1m]))')).toBeUndefined();
    expect(parseBatchable('up')).toBeUndefined();
  });

  it('many services due together: one grouped query per atom, each value as its own query gives', async () => {
    const batching = createBatchingProvider(counted, { windowMs: 100 });
    const template = BUILTIN_TEMPLATES.get('request-success-rate')!;
    const queries = SERVICES.flatMap((s) =>
      (['canary', 'stable'] as const).map((which) =>
        template.promql(ctxOf(s), ctxOf(s)[which], 10, { reporter: 'source', quantile: 0.99 }),
      ),
    );
    sent.length = 0;
    const batched = await Promise.all(queries.map((q) => batching.query(q)));
    // the ratio's two sums, each one grouped query for all 8 checks
    expect(sent).toHaveLength(2);
    expect(sent[0]).toMatch(
      /^sum by \(destination_service_name, destination_version\) \(rate\(istio_requests_total\{/,
    );
    const alone = await Promise.all(queries.map((q) => real.query(q)));
    for (let i = 0; i < queries.length; i++) {
      // the traffic is steady, so a query a moment later gives the same rate
      expect(firstValue(batched[i]!), queries[i]).toBeCloseTo(firstValue(alone[i]!)!, 1);
    }
    // gamma's canary fails, every other subset is healthy
    expect(firstValue(batched[4]!)).toBeLessThan(90);
    expect(firstValue(batched[0]!)).toBeCloseTo(100, 6);
  }, 30_000);

  it('a service with no series gets no value (as its own query), and custom PromQL passes through', async () => {
    const batching = createBatchingProvider(counted, { windowMs: 50 });
    const template = BUILTIN_TEMPLATES.get('request-success-rate')!;
    const none = template.promql(ctxOf('omega'), ctxOf('omega').canary, 10, {
      reporter: 'source',
      quantile: 0.99,
    });
    const custom = 'max(rate(istio_requests_total{destination_service_name="alpha"}[10s]))';
    sent.length = 0;
    const [r, c] = await Promise.all([batching.query(none), batching.query(custom)]);
    expect(r).toMatchObject({ type: 'vector', series: [] });
    expect(firstValue(c)).toBeGreaterThan(0);
    expect(sent).toContain(custom);
    expect(batching.stats().passedThrough).toBe(1);
  }, 30_000);
});
