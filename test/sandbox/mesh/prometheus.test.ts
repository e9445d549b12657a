import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAnalysis } from '../../../src/metrics/analysis.ts';
import { createPrometheusProvider, type PrometheusProvider } from '../../../src/metrics/prometheus.ts';
import type { MetricCheckInput } from '../../../src/metrics/spec.ts';
import type { AnalysisContext, AnalysisReport } from '../../../src/metrics/types.ts';
import {
  type SandboxMesh,
  startSandboxMesh,
  waitForGatewayScrape,
  writeSandboxFile,
} from '../../../src/sandbox/mesh/index.ts';
import { startTestKube, type TestKube } from '../../helpers/kube.ts';
import { eventually } from '../../helpers/services.ts';
import { destinationRule, service, virtualService } from './fixtures.ts';
import { startTestPod, type TestPod } from './test-pods.ts';

const NS = 'bookinfo';
const WINDOW = 10;

function ctx(canary: string, stable = 'v1'): AnalysisContext {
  return {
    namespace: NS,
    host: 'reviews',
    service: 'reviews',
    stable: { subset: 'stable', labels: { app: 'reviews', version: stable } },
    canary: { subset: 'canary', labels: { app: 'reviews', version: canary } },
    intervalSeconds: WINDOW,
  };
}

const SUCCESS: MetricCheckInput[] = [
  { name: 'success-rate', template: 'request-success-rate', thresholdRange: { min: 99 }, critical: true },
];

describe('a real Prometheus scraping the gateway, read by vane analysis', () => {
  let kube: TestKube;
  let mesh: SandboxMesh;
  let provider: PrometheusProvider;
  let dataDir: string;
  let pidFile: string | undefined;
  const pods: TestPod[] = [];

  beforeAll(async () => {
    kube = await startTestKube();
    const sim = kube.sim;
    sim.putObject(service('reviews', NS, { app: 'reviews' }));
    sim.putObject(
      destinationRule('reviews', NS, 'reviews', { stable: { version: 'v1' }, canary: { version: 'v2' } }),
    );
    pods.push(await startTestPod(sim, 'reviews-v1-5d8f7c-aaaaa', NS, { app: 'reviews', version: 'v1' }));
    // The canary fails 30% of its requests, with 500 (Istio's default retries cover only 503), and
    // answers after 120 ms.
    pods.push(
      await startTestPod(
        sim,
        'reviews-v2-6c9e4b-bbbbb',
        NS,
        { app: 'reviews', version: 'v2' },
        { errorRate: 0.3, delayMs: 120 },
      ),
    );
    sim.putObject(
      virtualService('reviews', NS, {
        hosts: ['reviews'],
        http: [
          {
            route: [
              { destination: { host: 'reviews', subset: 'stable' }, weight: 50 },
              { destination: { host: 'reviews', subset: 'canary' }, weight: 50 },
            ],
          },
        ],
      }),
    );
    dataDir = mkdtempSync(join(process.env.VANE_TEST_RUN_DIR ?? tmpdir(), 'mesh-'));
    mesh = await startSandboxMesh({
      sim,
      dataDir,
      load: { targets: [{ host: 'reviews', namespace: NS }], rate: 40 },
    });
    // The run's teardown kills it if this file crashes.
    if (process.env.VANE_TEST_RUN_DIR && mesh.prometheus) {
      mkdirSync(join(process.env.VANE_TEST_RUN_DIR, 'pids'), { recursive: true });
      pidFile = join(process.env.VANE_TEST_RUN_DIR, 'pids', String(mesh.prometheus.pid));
      writeFileSync(pidFile, String(mesh.prometheus.pid));
    }
    provider = createPrometheusProvider({ url: mesh.prometheusUrl! });
    await waitForGatewayScrape(mesh.prometheusUrl!);
  });
  afterAll(async () => {
    provider?.close();
    await mesh?.close();
    await Promise.all(pods.map((p) => p.close()));
    await kube?.stop();
    if (pidFile) rmSync(pidFile, { force: true });
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('sees the canary error rate the test pods give, through the built-in request-success-rate template', async () => {
    const analyse = (c: AnalysisContext, reporter: 'source' | 'destination' = 'source') =>
      runAnalysis({ provider, checks: SUCCESS, ctx: c, minRequests: 100, reporter });
    // Wait until the window holds enough canary requests for a verdict.
    const conclusive = (c: AnalysisContext, reporter?: 'source' | 'destination') =>
      eventually<AnalysisReport>(
        async () => {
          const r = await analyse(c, reporter);
          return r.verdict === 'inconclusive' ? undefined : r;
        },
        60_000,
        1_000,
      );
    const canary = await conclusive(ctx('v2'));
    const value = canary.results[0]!.value!;
    console.log(
      `canary success rate ${value.toFixed(1)}% over ${canary.requests} requests; load so far ${JSON.stringify(mesh.load!.stats().byPod)}`,
    );
    expect(canary.verdict).toBe('fail');
    expect(value).toBeGreaterThan(55);
    expect(value).toBeLessThan(85);

    const stable = await conclusive(ctx('v1', 'v2'));
    expect(stable.verdict).toBe('pass');
    expect(stable.results[0]!.value).toBe(100);

    const byDestination = await conclusive(ctx('v2'), 'destination');
    expect(byDestination.verdict).toBe('fail');
    expect(Math.abs(byDestination.results[0]!.value! - value)).toBeLessThan(15);

    // The latency histogram: p50 of the canary falls in Istio's (100, 250] bucket.
    const latency = await runAnalysis({
      provider,
      checks: [
        {
          name: 'p50',
          template: 'request-duration',
          options: { quantile: 0.5 },
          thresholdRange: { max: 100 },
        },
      ],
      ctx: ctx('v2'),
    });
    expect(latency.verdict).toBe('fail');
    expect(latency.results[0]!.value).toBeGreaterThan(100);
    expect(latency.results[0]!.value).toBeLessThanOrEqual(250);

    // Prometheus holds the series under Istio's workload names (the Deployment's), both reporters.
    const q =
      'count by (destination_workload, reporter) (istio_requests_total{destination_service_name="reviews"})';
    const res = await provider.query(q);
    const series =
      res.type === 'vector'
        ? res.series.map((x) => `${x.labels.reporter} ${x.labels.destination_workload}`)
        : [];
    expect(series.sort()).toEqual([
      'destination reviews-v1',
      'destination reviews-v2',
      'source reviews-v1',
      'source reviews-v2',
    ]);

    // The load went through the gateway at its steady rate to both subsets.
    const stats = mesh.load!.stats();
    expect(stats.byPod['reviews-v1-5d8f7c-aaaaa']).toBeGreaterThan(50);
    expect(stats.byPod['reviews-v2-6c9e4b-bbbbb']).toBeGreaterThan(50);
    expect(stats.failed).toBe(0);
  });

  it('writes sandbox.json naming every part, and refuses unknown fields', () => {
    const info = {
      apiUrl: 'http://127.0.0.1:8080',
      kubeconfig: join(dataDir, 'kubeconfig'),
      kubeUrl: kube.sim.url,
      gatewayUrl: mesh.gatewayUrl,
      prometheusUrl: mesh.prometheusUrl!,
    };
    const file = writeSandboxFile(dataDir, info);
    expect(file).toBe(join(dataDir, 'sandbox.json'));
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(info);
    expect(() => writeSandboxFile(dataDir, { ...info, extra: 'x' } as typeof info)).toThrow(
      /unknown field extra; the fields are apiUrl, kubeconfig, kubeUrl, gatewayUrl, prometheusUrl/,
    );
    expect(() => writeSandboxFile(dataDir, { ...info, gatewayUrl: '127.0.0.1:1' })).toThrow(
      /gatewayUrl must be an http\(s\) URL/,
    );
  });
});
