/**
 * Capacity: N concurrently active rollouts driven by one worker (this process) at guardInterval 5s.
 * Prints tick lateness (p50/p99), ticks per second, this process's CPU per tick, and Redis memory
 * per rollout including its event history. The kube simulator runs in its own process; the metric
 * provider is an in-process fake (the guard's queries are not what is measured here).
 * Run: npx tsx bench/engine-capacity.ts [--rollouts 1000] [--seconds 60]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { clusterTargetFacts } from '../src/domain.ts';
import { createKubeClients, createKubeRouters } from '../src/mesh/kube-router.ts';
import { createLogger } from '../src/observability/logger.ts';
import { connectRedis } from '../src/redis.ts';
import { createRolloutAnalyzer } from '../src/rollouts/analyzer.ts';
import { startRollout } from '../src/rollouts/verbs.ts';
import { freePort, startRedisServer } from '../src/sandbox/processes.ts';
import { startWorkers } from '../src/workers/runtime.ts';
import { tickProcessor } from '../src/workers/ticks.ts';
import { buildTestDomain } from '../test/helpers/domain.ts';
import { canarySpec, FakeSuccessRate } from '../test/helpers/engine.ts';

const { values } = parseArgs({
  options: {
    rollouts: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '60' },
    concurrency: { type: 'string', default: '50' },
  },
});
const N = Number(values.rollouts);
const SECONDS = Number(values.seconds);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const dir = mkdtempSync(join(tmpdir(), 'vane-bench-capacity-'));
const redis = await startRedisServer({ dir: join(dir, 'redis') });
const port = await freePort();
const sim = spawn(
  'node',
  [join(import.meta.dirname, '../bin/vane.mjs'), 'sandbox', 'kube', '--port', String(port)],
  {
    stdio: ['ignore', 'ignore', 'inherit'],
  },
);
const base = `http://127.0.0.1:${port}`;
for (let i = 0; ; i++) {
  if ((await fetch(`${base}/version`).catch(() => undefined))?.ok) break;
  if (i > 300) throw new Error('kube simulator did not start');
  await sleep(100);
}

async function post(path: string, body: unknown): Promise<void> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok && res.status !== 409) throw new Error(`${path}: ${res.status} ${await res.text()}`);
}

const NS = 'shop';
await post('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
const names = Array.from({ length: N }, (_, i) => `svc-${i}`);
for (let i = 0; i < names.length; i += 50) {
  await Promise.all(
    names.slice(i, i + 50).flatMap((name) => [
      post(`/apis/networking.istio.io/v1/namespaces/${NS}/virtualservices`, {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name, namespace: NS },
        spec: {
          hosts: [name],
          http: [{ name: 'default', route: [{ destination: { host: name, subset: 'v1' } }] }],
        },
      }),
      post(`/apis/networking.istio.io/v1/namespaces/${NS}/destinationrules`, {
        apiVersion: 'networking.istio.io/v1',
        kind: 'DestinationRule',
        metadata: { name, namespace: NS },
        spec: { host: name, subsets: [{ name: 'v1', labels: { app: name, version: 'v1' } }] },
      }),
    ]),
  );
}

const kubeConfig = new KubeConfig();
kubeConfig.loadFromOptions({
  clusters: [{ name: 'sim', server: base, skipTLSVerify: true }],
  users: [{ name: 'u' }],
  contexts: [{ name: 'sim', cluster: 'sim', user: 'u' }],
  currentContext: 'sim',
});
const router = createKubeRouters({ kubeConfig, timeoutMs: 10_000 });
const provider = new FakeSuccessRate();
const domain = buildTestDomain({
  redisUrl: redis.url,
  router,
  workloads: createKubeClients({ kubeConfig, timeoutMs: 10_000 }),
  analyzer: createRolloutAnalyzer({ provider, facts: clusterTargetFacts(router) }),
});
const lateness: number[] = [];
let ticks = 0;
const recorder = domain.ctx.recorder;
const tickLate = recorder.tickLate.bind(recorder);
recorder.tickLate = (s: number) => {
  lateness.push(s);
  tickLate(s);
};
const observeTick = recorder.observeTick.bind(recorder);
recorder.observeTick = (s: number) => {
  ticks++;
  observeTick(s);
};

const info = async (): Promise<number> => {
  const text = await domain.redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(text)?.[1]);
};
const memBefore = await info();

const blocking = connectRedis(redis.url, { role: 'worker' });
const pool = startWorkers({
  connection: blocking,
  prefix: domain.prefix,
  processors: [tickProcessor(domain.ctx, Number(values.concurrency))],
  logger: createLogger({ level: 'silent' }),
});

const t0 = Date.now();
for (let i = 0; i < N; i += 20) {
  await Promise.all(
    names.slice(i, i + 20).map((name) =>
      startRollout({
        ctx: domain.ctx,
        input: canarySpec(name, {
          strategy: { type: 'canary', steps: [10, 20, 30, 40, 50], stepInterval: '30m' },
          analysis: {
            guardInterval: '5s',
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
        }),
      }),
    ),
  );
}
// every rollout at its first step
for (;;) {
  const progressing = (await domain.ctx.store.countByPhase()).progressing ?? 0;
  if (progressing >= N && (await domain.ticks.depth())['ticks/wait'] === 0) break;
  if (Date.now() - t0 > 600_000) throw new Error('rollouts did not all start within 10 minutes');
  await sleep(500);
}
console.log(`${N} rollouts progressing after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
await sleep(6_000); // settle into the 5s rhythm

lateness.length = 0;
ticks = 0;
const cpu0 = process.cpuUsage();
const wall0 = Date.now();
await sleep(SECONDS * 1000);
const cpu = process.cpuUsage(cpu0);
const wall = (Date.now() - wall0) / 1000;
const measuredTicks = ticks;
const sorted = [...lateness].sort((a, b) => a - b);
const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
const memAfter = await info();
const sample = (await domain.ctx.store.list({ active: true, limit: 1 }))[0]!;
const docBytes = Number(
  await domain.redis.call('MEMORY', 'USAGE', `${domain.prefix}:r:rollout:${sample.id}`),
);
const eventBytes = Number(await domain.redis.call('MEMORY', 'USAGE', domain.ctx.store.eventsKey(sample.id)));

console.log(
  `over ${wall.toFixed(0)} s: ${measuredTicks} ticks, ${(measuredTicks / wall).toFixed(1)} ticks/s (expected ${(N / 5).toFixed(0)}/s at guardInterval 5s)`,
);
console.log(
  `tick lateness: p50 ${(q(0.5) * 1000).toFixed(0)} ms, p99 ${(q(0.99) * 1000).toFixed(0)} ms, max ${((sorted.at(-1) ?? 0) * 1000).toFixed(0)} ms`,
);
console.log(
  `worker CPU per tick: ${((cpu.user + cpu.system) / 1000 / Math.max(1, measuredTicks)).toFixed(2)} ms (this process: ${(((cpu.user + cpu.system) / 1e6 / wall) * 100).toFixed(0)}% of one core)`,
);
console.log(
  `Redis memory per rollout (queue job, document, indexes, events): ${((memAfter - memBefore) / N / 1024).toFixed(1)} KB; one rollout's document ${(docBytes / 1024).toFixed(1)} KB, its event stream ${(eventBytes / 1024).toFixed(1)} KB`,
);

await pool.close();
await blocking.quit();
await domain.close();
sim.kill('SIGTERM');
await redis.stop();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
