/**
 * Reaction time: from the moment a canary starts failing to the VirtualService back at stable 100,
 * with guardInterval 2s and Prometheus scraping every 1s. Real Prometheus, the test Istio exporter,
 * the kube simulator, a real Redis and one in-process worker.
 * Run: npx tsx bench/engine-reaction.ts [--runs 10]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createPrometheusProvider } from '../src/metrics/prometheus.ts';
import { startRollout } from '../src/rollouts/verbs.ts';
import { startPrometheus, startRedisServer } from '../src/sandbox/processes.ts';
import { canaryWeightOf, seedTarget, startEngineHarness, VS } from '../test/helpers/engine.ts';
import { startIstioExporter } from '../test/helpers/istio-exporter.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '10' } } });
const RUNS = Number(values.runs);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(fn: () => boolean, timeoutMs: number, everyMs = 10): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(everyMs);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'vane-bench-reaction-'));
const redis = await startRedisServer({ dir: join(dir, 'redis') });
const exporter = await startIstioExporter({ namespace: 'bookinfo', service: 'reviews' });
exporter.setSubset('v1', { rps: 50, latencyMs: 20 });
exporter.setSubset('v2', { rps: 50, latencyMs: 20 });
const prom = await startPrometheus({
  dir: join(dir, 'prometheus'),
  targets: [{ job: 'istio', target: exporter.hostPort }],
  scrapeInterval: '1s',
});
const provider = createPrometheusProvider({ url: prom.url, timeout: 2_000 });
const h = await startEngineHarness({ redisUrl: redis.url, provider });
seedTarget(h.sim, 'reviews', 'bookinfo');
const weight = () => canaryWeightOf(h.sim.getObject(VS, 'VirtualService', 'bookinfo', 'reviews'));

const spec = {
  target: {
    namespace: 'bookinfo',
    virtualService: 'reviews',
    destinationRule: 'reviews',
    routes: ['default'],
  },
  stable: { subset: 'v1' },
  canary: { subset: 'v2', labels: { app: 'reviews', version: 'v2' } },
  strategy: { type: 'canary', steps: [50, 100], stepInterval: '10m' },
  analysis: {
    guardInterval: '2s',
    guardWindow: '5s',
    minRequests: 0,
    failureThreshold: 1,
    metrics: [
      { name: 'success-rate', template: 'request-success-rate', critical: true, thresholdRange: { min: 99 } },
    ],
  },
};

// Prometheus needs a few scrapes before rate() answers.
await sleep(8_000);
const times: number[] = [];
try {
  for (let run = 0; run < RUNS; run++) {
    exporter.setSubset('v2', { rps: 50, latencyMs: 20, errorRate: 0 });
    await sleep(6_000); // the guard window holds no errors from the last run
    const { rollout } = await startRollout({ ctx: h.domain.ctx, input: spec });
    await until(() => weight() === 50, 30_000);
    // a random moment within the guard interval
    await sleep(3_000 + Math.random() * 2_000);
    const failingAt = Date.now();
    exporter.setSubset('v2', { rps: 50, latencyMs: 20, errorRate: 0.3 });
    await until(() => weight() === undefined, 60_000, 5);
    const ms = Date.now() - failingAt;
    times.push(ms);
    const r = await h.settle(rollout.id);
    console.log(`run ${run + 1}: ${ms} ms (${r.phase}: ${r.reason})`);
  }
} finally {
  await h.close();
  provider.close();
  await prom.stop();
  await exporter.stop();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
}
const sorted = [...times].sort((a, b) => a - b);
const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
console.log(
  `reaction time over ${RUNS} runs (guardInterval 2s, guardWindow 5s, scrape 1s): median ${q(0.5)} ms, min ${sorted[0]} ms, max ${sorted.at(-1)} ms`,
);
