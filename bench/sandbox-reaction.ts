/**
 * The user's view of a canary, measured at the mesh gateway of the whole sandbox (real Redis, real
 * Prometheus scraping the gateway every 1 s, pods, vane's API over HTTP and its workers):
 *  1. the canary's real share of requests at each step against its weight (a sample per step);
 *  2. the time from the canary going bad (its Deployment annotated to fail 50% of requests) to the
 *     last request not answered by a stable pod, with guardInterval 1s and a 5 s guard window.
 * Run: npx tsx bench/sandbox-reaction.ts [--runs 5] [--sample 1000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/observability/logger.ts';
import { applyDemoService } from '../src/sandbox/demo-service.ts';
import { type LoadGenerator, sampleTraffic, startLoad } from '../src/sandbox/mesh/index.ts';
import { ERROR_RATE_ANNOTATION } from '../src/sandbox/pods/index.ts';
import { freePort } from '../src/sandbox/processes.ts';
import { startSandbox } from '../src/sandbox/run.ts';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '5' }, sample: { type: 'string', default: '1000' } },
});
const RUNS = Number(values.runs);
const SAMPLE = Number(values.sample);
const NAME = 'reviews';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const dir = mkdtempSync(join(tmpdir(), 'vane-bench-sandbox-'));
const config = loadConfig({
  PORT: String(await freePort()),
  HOST: '127.0.0.1',
  VANE_DATA_DIR: dir,
  LOG_LEVEL: 'error',
  LOG_FORMAT: 'json',
});
const sb = await startSandbox({
  config,
  logger: createLogger({ level: 'error', format: 'json' }),
  portExplicit: true,
  persist: false,
  bookinfo: false,
});
const loads: LoadGenerator[] = [];

async function api(method: string, path: string, body?: unknown) {
  const r = await fetch(`${sb.apiUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(15_000),
  });
  // biome-ignore lint/suspicious/noExplicitAny: the API's JSON.
  return (await r.json()) as any;
}
// biome-ignore lint/suspicious/noExplicitAny: the API's JSON.
async function until(id: string, test: (r: any) => boolean, timeoutMs = 120_000): Promise<any> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const { rollout } = await api('GET', `/api/v1/rollouts/${id}`);
    if (test(rollout)) return rollout;
    if (Date.now() > end) throw new Error(`rollout ${id} is ${rollout.phase}, not what was awaited`);
    await sleep(50);
  }
}
const spec = (ns: string, steps: number[], stepInterval: string) => ({
  target: { namespace: ns, virtualService: NAME, destinationRule: NAME },
  stable: { subset: 'v1' },
  canary: { subset: 'v2', labels: { app: NAME, version: 'v2' }, workload: { name: `${NAME}-v2` } },
  strategy: { type: 'canary', steps, stepInterval },
  analysis: {
    interval: '10s',
    guardInterval: '1s',
    guardWindow: '5s',
    failureThreshold: 1,
    minRequests: 10,
    metrics: [
      { name: 'success-rate', template: 'request-success-rate', critical: true, thresholdRange: { min: 95 } },
    ],
  },
});
const service = async (ns: string) => {
  await applyDemoService(sb.sim, {
    namespace: ns,
    name: NAME,
    versions: [{ version: 'v1' }, { version: 'v2' }],
  });
};
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

try {
  // 1. Shares per step.
  {
    const ns = 'bench-share';
    await service(ns);
    loads.push(startLoad({ gatewayUrl: sb.gatewayUrl, targets: [{ host: NAME, namespace: ns }], rate: 20 }));
    const steps = [5, 10, 25, 50, 75];
    const { rollout } = await api('POST', '/api/v1/rollouts', spec(ns, steps, '15s'));
    console.log(`canary share of ${SAMPLE} requests through the gateway at each step:`);
    console.log('weight  share   |share-weight|  3σ of a binomial');
    for (const w of steps) {
      await until(rollout.id, (r) => r.applied && r.weights.canary === w);
      const s = await sampleTraffic(sb.gatewayUrl, { host: NAME, namespace: ns, n: SAMPLE, concurrency: 10 });
      let v2 = 0;
      let all = 0;
      for (const [pod, n] of Object.entries(s.byPod)) {
        all += n;
        if (pod.startsWith(`${NAME}-v2-`)) v2 += n;
      }
      const share = (100 * v2) / all;
      const sigma3 = 300 * Math.sqrt(((w / 100) * (1 - w / 100)) / all);
      console.log(
        `${String(w).padStart(5)}%  ${share.toFixed(1).padStart(5)}%  ${Math.abs(share - w)
          .toFixed(1)
          .padStart(8)}      ±${sigma3.toFixed(1)}`,
      );
    }
    await api('POST', `/api/v1/rollouts/${rollout.id}/abort`, { reason: 'bench done' });
  }

  // 2. Reaction at the gateway.
  const decided: number[] = [];
  const offStable: number[] = [];
  console.log(
    `\ncanary made bad at 50% (error rate 0.5), guardInterval 1s, guardWindow 5s, Prometheus every 1s:`,
  );
  for (let i = 0; i < RUNS; i++) {
    const ns = `bench-reaction-${i}`;
    await service(ns);
    let badAt = Number.POSITIVE_INFINITY;
    let last = 0;
    const load = startLoad({
      gatewayUrl: sb.gatewayUrl,
      targets: [{ host: NAME, namespace: ns }],
      rate: 40,
      onAnswer: (a) => {
        if (a.at >= badAt && !(a.pod ?? '').startsWith(`${NAME}-v1-`)) last = Math.max(last, a.at);
      },
    });
    loads.push(load);
    const { rollout } = await api('POST', '/api/v1/rollouts', spec(ns, [50], '10m'));
    await until(rollout.id, (r) => r.applied && r.weights.canary === 50);
    await sleep(4_000);
    const dep = sb.sim.getObject('apps/v1', 'Deployment', ns, `${NAME}-v2`);
    dep.spec.template.metadata.annotations[ERROR_RATE_ANNOTATION] = '0.5';
    badAt = Date.now();
    sb.sim.putObject(dep);
    const end = await until(rollout.id, (r) => ['failed', 'aborted', 'succeeded'].includes(r.phase));
    await sleep(2_000);
    await load.stop();
    const { events } = await api('GET', `/api/v1/rollouts/${rollout.id}/events`);
    const d = events.find((e: { to?: string }) => e.to === 'rolling-back').time - badAt;
    decided.push(d);
    offStable.push(last - badAt);
    console.log(
      `  run ${i + 1}: ${end.phase}; rollback decided after ${(d / 1000).toFixed(2)} s; last request off stable after ${((last - badAt) / 1000).toFixed(2)} s`,
    );
  }
  const f = (xs: number[]) =>
    `median ${(pct(xs, 0.5) / 1000).toFixed(2)} s, max ${(Math.max(...xs) / 1000).toFixed(2)} s`;
  console.log(`rollback decided: ${f(decided)}`);
  console.log(`100% of requests on stable (gateway): ${f(offStable)}`);
} finally {
  await Promise.all(loads.map((l) => l.stop()));
  await sb.close();
  rmSync(dir, { recursive: true, force: true });
}
