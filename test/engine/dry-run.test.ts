import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrometheusProvider } from '../../src/metrics/prometheus.ts';
import { singleValue } from '../../src/metrics/values.ts';
import { rolloutEvents, startRollout } from '../../src/rollouts/verbs.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { canarySpec, type EngineHarness, seedTarget, startEngineHarness } from '../helpers/engine.ts';
import { type IstioExporter, startIstioExporter } from '../helpers/istio-exporter.ts';
import { eventually, startTestPrometheus, startTestRedis } from '../helpers/services.ts';

/**
 * Dry-run metrics on the engine: the kube simulator, a real Redis, a real Prometheus scraping
 * Istio-like series. The canary is slow (p99 over the dry-run bound) but error-free.
 */
let redis: ManagedProcess;
let prom: ManagedProcess;
let cart: IstioExporter;
let shoes: IstioExporter;
let h: EngineHarness;

beforeAll(async () => {
  redis = await startTestRedis();
  cart = await startIstioExporter({ namespace: 'shop', service: 'cart' });
  shoes = await startIstioExporter({ namespace: 'shop', service: 'shoes' });
  for (const e of [cart, shoes]) {
    e.setSubset('v1', { rps: 50, latencyMs: 20 });
    e.setSubset('v2', { rps: 50, latencyMs: 800 }); // slow, never failing
  }
  prom = await startTestPrometheus([
    { job: 'cart', target: cart.hostPort },
    { job: 'shoes', target: shoes.hostPort },
  ]);
  const provider = createPrometheusProvider({ url: prom.url, timeout: '5s' });
  // Prometheus needs a few scrapes before rate() over the window has an answer.
  await eventually(
    async () => {
      const q = 'count(istio_requests_total) >= 8 and on() count_over_time(up{job="shoes"}[1m]) >= 4';
      const r = await provider.query(q);
      return r.type === 'vector' && r.series.length > 0 && singleValue(r, q) > 0 ? true : undefined;
    },
    40_000,
    250,
  );
  h = await startEngineHarness({ redisUrl: redis.url, provider });
});
afterAll(async () => {
  await h?.close();
  await prom?.stop();
  await cart?.stop();
  await shoes?.stop();
  await redis?.stop();
});

const analysis = (metrics: unknown[]) => ({
  interval: '5s',
  guardInterval: '500ms',
  minRequests: 10,
  failureThreshold: 1,
  metrics,
});
const strategy = { type: 'canary', steps: [25, 50], stepInterval: '2s' };

describe('dry-run metrics on the engine (kube simulator, real Redis, real Prometheus)', () => {
  it('promotes a canary whose dry-run metrics fail and error, with every failure in the events', async () => {
    seedTarget(h.sim, 'cart');
    const spec = canarySpec('cart', {
      strategy,
      analysis: analysis([
        {
          name: 'success-rate',
          template: 'request-success-rate',
          critical: true,
          thresholdRange: { min: 99 },
        },
        // critical and dry-run: the guard runs it, and its failure must not roll back
        {
          name: 'p99-latency',
          template: 'request-duration',
          critical: true,
          dryRun: true,
          thresholdRange: { max: 100 },
        },
        // Prometheus refuses this query (a string where a number goes): Argo #2151 / #2399
        {
          name: 'broken-query',
          query: 'topk("three", istio_requests_total)',
          dryRun: true,
          thresholdRange: { max: 1 },
        },
      ]),
    });
    const started = Date.now();
    const { rollout } = await startRollout({ ctx: h.domain.ctx, input: spec });
    const done = await h.settle(rollout.id, 45_000);
    expect(done.phase, done.reason).toBe('succeeded');
    // On time: two 2 s steps and the promotion, nothing held back by the dry-run checks.
    expect(Date.now() - started).toBeLessThan(20_000);

    const events = await rolloutEvents({ ctx: h.domain.ctx, id: rollout.id });
    const analyses = events.filter((e) => e.type === 'analysis' && e.results?.length);
    expect(analyses.length).toBeGreaterThanOrEqual(2);
    for (const e of analyses) expect(e.verdict, e.reason).toBe('pass');
    const full = analyses.filter((e) => e.reason.startsWith('analysis'));
    expect(full.length).toBeGreaterThanOrEqual(2);
    for (const e of full) {
      const byName = Object.fromEntries(e.results!.map((m) => [m.name, m]));
      expect(byName['success-rate']).toMatchObject({ verdict: 'pass' });
      expect(byName['success-rate']!.dryRun).toBeUndefined();
      expect(byName['p99-latency']).toMatchObject({ verdict: 'fail', dryRun: true, critical: true });
      expect(byName['p99-latency']!.message).toMatch(/> 100ms/);
      expect(byName['broken-query']).toMatchObject({
        verdict: 'inconclusive',
        reason: 'bad-query',
        dryRun: true,
      });
    }
    // The stored rollout shows the last analysis with the dry-run results as well.
    expect(done.lastAnalysis?.results.some((m) => m.dryRun && m.verdict === 'fail')).toBe(true);
    expect(events.some((e) => e.type === 'transition' && e.to === 'rolling-back')).toBe(false);
  });

  it('promotes on time when every metric is dry-run and fails', async () => {
    seedTarget(h.sim, 'shoes');
    const spec = canarySpec('shoes', {
      strategy,
      analysis: analysis([
        { name: 'p99-latency', template: 'request-duration', dryRun: true, thresholdRange: { max: 100 } },
        {
          name: 'latency-vs-stable',
          template: 'request-duration',
          dryRun: true,
          critical: true,
          compare: { maxIncrease: 0.1 },
        },
      ]),
    });
    const started = Date.now();
    const { rollout } = await startRollout({ ctx: h.domain.ctx, input: spec });
    const done = await h.settle(rollout.id, 45_000);
    expect(done.phase, done.reason).toBe('succeeded');
    expect(Date.now() - started).toBeLessThan(20_000);
    const events = await rolloutEvents({ ctx: h.domain.ctx, id: rollout.id });
    const failures = events
      .filter((e) => e.type === 'analysis')
      .flatMap((e) => e.results ?? [])
      .filter((m) => m.verdict === 'fail');
    expect(failures.length).toBeGreaterThanOrEqual(2);
    expect(failures.every((m) => m.dryRun)).toBe(true);
    expect(new Set(failures.map((m) => m.name))).toEqual(new Set(['p99-latency', 'latency-vs-stable']));
  });
});
