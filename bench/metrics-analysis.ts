/**
 * Metric analysis figures: evaluations per second of a 3-metric analysis against a real Prometheus
 * scraping the test exporter, and CPU time of the Mann-Whitney judge on two 1,000-point series.
 * Run: npx tsx bench/metrics-analysis.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAnalysis } from '../src/metrics/analysis.ts';
import { judgeMannWhitney, mannWhitneyU } from '../src/metrics/judges/mann-whitney.ts';
import { createPrometheusProvider } from '../src/metrics/prometheus.ts';
import { compileChecks } from '../src/metrics/spec.ts';
import type { AnalysisContext } from '../src/metrics/types.ts';
import { startPrometheus } from '../src/sandbox/processes.ts';
import { startIstioExporter } from '../test/helpers/istio-exporter.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);

function mannWhitneyFigures() {
  // Deterministic pseudo-random latencies (LCG) so runs are comparable.
  let seed = 42;
  const rnd = () => {
    seed = (seed * 1664525 + 1013904223) % 2 ** 32;
    return seed / 2 ** 32;
  };
  const stable = Array.from({ length: 1000 }, () => 100 + rnd() * 50);
  const canary = Array.from({ length: 1000 }, () => 104 + rnd() * 50);
  const opts = {
    direction: 'increase' as const,
    confidence: 0.95,
    effectSize: 0.1,
    tolerance: 0,
    minPoints: 5,
  };
  for (let i = 0; i < 50; i++) judgeMannWhitney(canary, stable, opts, { label: 'p99', unit: 'ms' }); // warm-up
  const runs = 500;
  const t0 = process.cpuUsage();
  for (let i = 0; i < runs; i++) mannWhitneyU(canary, stable);
  const u = process.cpuUsage(t0);
  const t1 = process.cpuUsage();
  let verdict = '';
  for (let i = 0; i < runs; i++)
    verdict = judgeMannWhitney(canary, stable, opts, { label: 'p99', unit: 'ms' }).verdict;
  const j = process.cpuUsage(t1);
  const ms = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000 / runs;
  console.log(
    `mann-whitney U test, 1000 vs 1000 points: ${ms(u).toFixed(3)} ms CPU per call (${runs} calls)`,
  );
  console.log(
    `mann-whitney judge (test + medians), 1000 vs 1000 points: ${ms(j).toFixed(3)} ms CPU per call (verdict ${verdict})`,
  );
}

async function analysisFigures() {
  const dir = mkdtempSync(join(tmpdir(), 'vane-bench-'));
  const exporter = await startIstioExporter();
  exporter.setSubset('v1', { rps: 40, errorRate: 0.001, latencyMs: 40 });
  exporter.setSubset('v2', { rps: 20, errorRate: 0.002, latencyMs: 45 });
  const prom = await startPrometheus({ dir, targets: [{ job: 'istio', target: exporter.hostPort }] });
  const provider = createPrometheusProvider({ url: prom.url });
  try {
    const ctx: AnalysisContext = {
      namespace: 'bookinfo',
      host: 'reviews',
      service: 'reviews',
      stable: { subset: 'v1', labels: { version: 'v1' } },
      canary: { subset: 'v2', labels: { version: 'v2' } },
      intervalSeconds: 10,
    };
    const checks = compileChecks([
      { name: 'success-rate', template: 'request-success-rate', thresholdRange: { min: 99 }, critical: true },
      { name: 'p99-latency', template: 'request-duration', thresholdRange: { max: 500 } },
      {
        name: 'latency-vs-stable',
        template: 'request-duration',
        compare: { to: 'stable', maxIncrease: 0.2 },
      },
    ]);
    const run = () => runAnalysis({ provider, checks, ctx, minRequests: 50 });
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = await run();
      if (r.verdict === 'pass' && (r.requests ?? 0) > 180) break;
      if (Date.now() > deadline)
        throw new Error(`no passing analysis after 60s: ${JSON.stringify(r.results)}`);
      await new Promise((res) => setTimeout(res, 500));
    }
    for (const concurrency of [1, 8]) {
      let n = 0;
      const end = Date.now() + SECONDS * 1000;
      const cpu = process.cpuUsage();
      const lat: number[] = [];
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (Date.now() < end) {
            const t = performance.now();
            const r = await run();
            lat.push(performance.now() - t);
            if (r.verdict !== 'pass') throw new Error(`unexpected verdict ${r.verdict}`);
            n++;
          }
        }),
      );
      const c = process.cpuUsage(cpu);
      lat.sort((a, b) => a - b);
      console.log(
        `3-metric analysis (7 PromQL queries each), concurrency ${concurrency}: ${(n / SECONDS).toFixed(1)} evaluations/s, ` +
          `p50 ${lat[Math.floor(lat.length / 2)]!.toFixed(1)} ms, p99 ${lat[Math.floor(lat.length * 0.99)]!.toFixed(1)} ms, ` +
          `vane CPU ${((c.user + c.system) / 1000 / n).toFixed(2)} ms per evaluation`,
      );
    }
  } finally {
    provider.close();
    await prom.stop();
    await exporter.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

mannWhitneyFigures();
await analysisFigures();
