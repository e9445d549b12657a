/**
 * Reaction time: from the moment a canary starts failing to the VirtualService back at stable 100,
 * with N other active rollouts ticking on the same worker. Real Prometheus scraping the test Istio
 * exporter every 1s (one service per rollout), the kube simulator, a real Redis, one in-process
 * worker. Each run is split into failure → first scrape with errors, that scrape → the decision
 * (the rollback's transition saved), and the decision → the VirtualService written.
 * Prints the figures, then a final `RESULT {json}` line.
 * Run: npx tsx bench/engine-reaction.ts --runs 20 --guard-interval 1s --background 1000
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createPrometheusProvider } from '../src/metrics/prometheus.ts';
import type { MetricProvider } from '../src/metrics/types.ts';
import { startRollout } from '../src/rollouts/verbs.ts';
import { startPrometheus, startRedisServer } from '../src/sandbox/processes.ts';
import { canarySpec, canaryWeightOf, seedTarget, startEngineHarness, VS } from '../test/helpers/engine.ts';
import { startIstioExporter } from '../test/helpers/istio-exporter.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '20' },
    'guard-interval': { type: 'string', default: '1s' },
    background: { type: 'string', default: '0' },
    'background-guard-interval': { type: 'string', default: '5s' },
    concurrency: { type: 'string', default: '500' },
    /** Batch the guard checks as src/domain.ts does (the recorded figures ran without). */
    batch: { type: 'boolean', default: false },
  },
});
const RUNS = Number(values.runs);
const GUARD = values['guard-interval']!;
const BACKGROUND = Number(values.background);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(fn: () => boolean, timeoutMs: number, everyMs = 10): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > end) throw new Error('timed out');
    await sleep(everyMs);
  }
}

const NS = 'bookinfo';
const background = Array.from({ length: BACKGROUND }, (_, i) => `bg-${i}`);
const dir = mkdtempSync(join(tmpdir(), 'vane-bench-reaction-'));
const redis = await startRedisServer({ dir: join(dir, 'redis') });
const exporter = await startIstioExporter({
  namespace: NS,
  services: ['reviews', ...background],
  reporters: ['source'],
  histograms: false,
});
// Every service healthy; reviews has traffic of its own, the one that fails.
exporter.setSubset('v1', { rps: 50, latencyMs: 20 });
exporter.setSubset('v2', { rps: 50, latencyMs: 20 });
exporter.setServiceSubset('reviews', 'v1', { rps: 50, latencyMs: 20 });
exporter.setServiceSubset('reviews', 'v2', { rps: 50, latencyMs: 20 });
const prom = await startPrometheus({
  dir: join(dir, 'prometheus'),
  targets: [{ job: 'istio', target: exporter.hostPort }],
  scrapeInterval: '1s',
});
const provider = createPrometheusProvider({ url: prom.url, timeout: 2_000 });
// as src/domain.ts wires it: batched guard checks where the code has them (it did not before)
const batching = (await import('../src/metrics/batch.ts').catch(() => undefined)) as
  | { createBatchingProvider(p: MetricProvider): MetricProvider }
  | undefined;
const h = await startEngineHarness({
  redisUrl: redis.url,
  provider: batching && values.batch ? batching.createBatchingProvider(provider) : provider,
  concurrency: Number(values.concurrency),
});
seedTarget(h.sim, 'reviews', NS);
for (const name of background) seedTarget(h.sim, name, NS);
const weight = () => canaryWeightOf(h.sim.getObject(VS, 'VirtualService', NS, 'reviews'));

// The moment the VirtualService is written without a canary destination, from the simulator itself.
let writtenAt = 0;
let armed = false;
h.sim.subscribe((e) => {
  if (
    e.kind === 'VirtualService' &&
    e.object?.metadata?.name === 'reviews' &&
    e.object?.metadata?.namespace === NS
  ) {
    if (armed && canaryWeightOf(e.object) === undefined && writtenAt === 0) writtenAt = Date.now();
  }
});

const spec = {
  ...canarySpec('reviews', {}, NS),
  strategy: { type: 'canary', steps: [50, 100], stepInterval: '10m' },
  analysis: {
    guardInterval: GUARD,
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
if (BACKGROUND) {
  const t0 = Date.now();
  for (let i = 0; i < background.length; i += 20) {
    await Promise.all(
      background.slice(i, i + 20).map((name) =>
        startRollout({
          ctx: h.domain.ctx,
          input: canarySpec(
            name,
            {
              strategy: { type: 'canary', steps: [10, 20, 30, 40, 50], stepInterval: '1h' },
              analysis: {
                guardInterval: values['background-guard-interval'],
                guardWindow: '30s',
                minRequests: 0,
                metrics: [
                  {
                    name: 'success-rate',
                    template: 'request-success-rate',
                    critical: true,
                    thresholdRange: { min: 99 },
                  },
                ],
              },
            },
            NS,
          ),
        }),
      ),
    );
  }
  for (;;) {
    const progressing = (await h.domain.ctx.store.countByPhase()).progressing ?? 0;
    if (progressing >= BACKGROUND) break;
    if (Date.now() - t0 > 900_000) throw new Error('background rollouts did not start within 15 minutes');
    await sleep(500);
  }
  console.log(
    `${BACKGROUND} background rollouts progressing after ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
}

interface Run {
  totalMs: number;
  toScrapeMs: number;
  scrapeToDecisionMs: number;
  decisionToWriteMs: number;
}
const runs: Run[] = [];
try {
  for (let run = 0; run < RUNS; run++) {
    exporter.setServiceSubset('reviews', 'v2', { rps: 50, latencyMs: 20, errorRate: 0 });
    await sleep(6_000); // the guard window holds no errors from the last run
    const { rollout } = await startRollout({ ctx: h.domain.ctx, input: spec });
    await until(() => weight() === 50, 300_000);
    // a random moment within the guard interval
    await sleep(2_000 + Math.random() * 2_000);
    const scrapesBefore = exporter.scrapes();
    let scrapedAt = 0;
    writtenAt = 0;
    armed = true;
    const failingAt = Date.now();
    exporter.setServiceSubset('reviews', 'v2', { rps: 50, latencyMs: 20, errorRate: 0.3 });
    await until(
      () => {
        if (!scrapedAt && exporter.scrapes() > scrapesBefore) scrapedAt = Date.now();
        return writtenAt !== 0;
      },
      300_000,
      2,
    );
    armed = false;
    const r = await h.settle(rollout.id);
    const events = await h.domain.ctx.store.events(rollout.id);
    const decidedAt =
      events.find((e) => e.type === 'transition' && e.to === 'rolling-back')?.time ?? writtenAt;
    const x: Run = {
      totalMs: writtenAt - failingAt,
      toScrapeMs: (scrapedAt || writtenAt) - failingAt,
      scrapeToDecisionMs: decidedAt - (scrapedAt || failingAt),
      decisionToWriteMs: writtenAt - decidedAt,
    };
    runs.push(x);
    console.log(
      `run ${run + 1}: ${x.totalMs} ms = scrape ${x.toScrapeMs} + decision ${x.scrapeToDecisionMs} + write ${x.decisionToWriteMs} (${r.phase}: ${r.reason})`,
    );
  }
} finally {
  await h.close();
  provider.close();
  await prom.stop();
  await exporter.stop();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : Math.round((s[m - 1]! + s[m]!) / 2);
};
const totals = runs.map((r) => r.totalMs).sort((a, b) => a - b);
const result = {
  runs: runs.length,
  guardInterval: GUARD,
  background: BACKGROUND,
  backgroundGuardInterval: values['background-guard-interval'],
  medianMs: median(totals),
  p95Ms: totals[Math.min(totals.length - 1, Math.ceil(0.95 * totals.length) - 1)],
  minMs: totals[0],
  maxMs: totals.at(-1),
  medianFailureToScrapeMs: median(runs.map((r) => r.toScrapeMs)),
  medianScrapeToDecisionMs: median(runs.map((r) => r.scrapeToDecisionMs)),
  medianDecisionToWriteMs: median(runs.map((r) => r.decisionToWriteMs)),
};
console.log(
  `reaction over ${result.runs} runs (guardInterval ${GUARD}, scrape 1s, ${BACKGROUND} other rollouts): median ${result.medianMs} ms, p95 ${result.p95Ms} ms, min ${result.minMs} ms, max ${result.maxMs} ms`,
);
console.log(`RESULT ${JSON.stringify(result)}`);
process.exit(0);
