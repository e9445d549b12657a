/**
 * Capacity: N concurrently active rollouts at guardInterval 5s, driven by one or more worker
 * processes sharing one queue. Every tick is a guard tick (rollouts held at their first step, step
 * interval 30m): read the managed weights, run the critical success-rate check against a real
 * Prometheus (scraping the test Istio exporter, which serves N services), save with compare-and-set,
 * schedule the next tick. The kube simulator runs in its own process; Redis and Prometheus too.
 * Prints the figures, then a final `RESULT {json}` line.
 * Run: npx tsx bench/engine-capacity.ts --rollouts 1000 --seconds 60 [--workers 2] [--concurrency 500]
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { Redis as IORedis } from 'ioredis';
import { clusterTargetFacts } from '../src/domain.ts';
import { createKubeClients, createKubeRouters } from '../src/mesh/kube-router.ts';
import { createPrometheusProvider } from '../src/metrics/prometheus.ts';
import type { MetricProvider } from '../src/metrics/types.ts';
import { createLogger } from '../src/observability/logger.ts';
import { connectRedis } from '../src/redis.ts';
import { createRolloutAnalyzer } from '../src/rollouts/analyzer.ts';
import { startRollout } from '../src/rollouts/verbs.ts';
import { freePort, startPrometheus, startRedisServer } from '../src/sandbox/processes.ts';
import { startWorkers } from '../src/workers/runtime.ts';
import { tickProcessor } from '../src/workers/ticks.ts';
import { buildTestDomain } from '../test/helpers/domain.ts';
import { canarySpec } from '../test/helpers/engine.ts';
import { startIstioExporter } from '../test/helpers/istio-exporter.ts';

const { values } = parseArgs({
  options: {
    rollouts: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '60' },
    concurrency: { type: 'string', default: '500' },
    workers: { type: 'string', default: '1' },
    child: { type: 'string' },
  },
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The batching layer, where the code under test has one (it did not before).
const batching = (await import('../src/metrics/batch.ts').catch(() => undefined)) as
  | { createBatchingProvider(p: MetricProvider): MetricProvider }
  | undefined;

// Commands this process sends to Redis (round trips as the client sees them: a script call is one).
let sent = 0;
const sendCommand = IORedis.prototype.sendCommand;
IORedis.prototype.sendCommand = function (this: IORedis, ...args: Parameters<typeof sendCommand>) {
  sent++;
  return sendCommand.apply(this, args);
} as typeof sendCommand;

interface WorkerSetup {
  redisUrl: string;
  kubeUrl: string;
  prometheusUrl: string;
  prefix?: string;
  concurrency: number;
}
interface WorkerFigures {
  ticks: number;
  lateness: number[];
  /** How long each tick ran, s. */
  durations: number[];
  /** The latest lateness of each wall-clock second (for bursts). */
  worstBySecond: Record<string, number>;
  cpuMs: number;
  kubeRequests: number;
  prometheusQueries: number;
  redisSent: number;
}

/** One worker: a domain on the shared Redis prefix, a tick processor, and counters reset on `measure`. */
async function startWorker(setup: WorkerSetup) {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'sim', server: setup.kubeUrl, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'sim', cluster: 'sim', user: 'u' }],
    currentContext: 'sim',
  });
  let kubeRequests = 0;
  let prometheusQueries = 0;
  const onResult = () => {
    kubeRequests++;
  };
  const router = createKubeRouters({ kubeConfig, timeoutMs: 10_000, onResult });
  const real = createPrometheusProvider({ url: setup.prometheusUrl, timeout: 5_000 });
  const provider: MetricProvider = {
    query: (q, o) => {
      prometheusQueries++;
      return real.query(q, o);
    },
    queryRange: (q, o) => {
      prometheusQueries++;
      return real.queryRange(q, o);
    },
    isOnline: () => real.isOnline(),
  };
  const domain = buildTestDomain({
    redisUrl: setup.redisUrl,
    router,
    workloads: createKubeClients({ kubeConfig, timeoutMs: 10_000, onResult }),
    // as src/domain.ts wires it: batched guard checks where the code has them
    analyzer: createRolloutAnalyzer({
      provider: batching ? batching.createBatchingProvider(provider) : provider,
      facts: clusterTargetFacts(router),
    }),
    ...(setup.prefix ? { prefix: setup.prefix } : {}),
  });
  const lateness: number[] = [];
  const durations: number[] = [];
  let worstBySecond: Record<string, number> = {};
  let ticks = 0;
  const recorder = domain.ctx.recorder;
  const tickLate = recorder.tickLate.bind(recorder);
  recorder.tickLate = (s: number) => {
    lateness.push(s);
    const sec = String(Math.floor(Date.now() / 1000) % 1000);
    worstBySecond[sec] = Math.max(worstBySecond[sec] ?? 0, Math.round(s * 1000));
    tickLate(s);
  };
  const observeTick = recorder.observeTick.bind(recorder);
  recorder.observeTick = (s: number) => {
    ticks++;
    durations.push(s);
    observeTick(s);
  };
  const blocking = connectRedis(setup.redisUrl, { role: 'worker' });
  const pool = startWorkers({
    connection: blocking,
    prefix: domain.prefix,
    processors: [tickProcessor(domain.ctx, setup.concurrency)],
    logger: createLogger({ level: 'silent' }),
  });
  let cpu0 = process.cpuUsage();
  return {
    domain,
    measure() {
      lateness.length = 0;
      durations.length = 0;
      worstBySecond = {};
      ticks = 0;
      kubeRequests = 0;
      prometheusQueries = 0;
      sent = 0;
      cpu0 = process.cpuUsage();
    },
    figures(): WorkerFigures {
      const cpu = process.cpuUsage(cpu0);
      return {
        ticks,
        lateness: [...lateness],
        durations: [...durations],
        worstBySecond,
        cpuMs: (cpu.user + cpu.system) / 1000,
        kubeRequests,
        prometheusQueries,
        redisSent: sent,
      };
    },
    async close() {
      await pool.close();
      await blocking.quit();
      await domain.close();
      real.close();
    },
  };
}

if (values.child) {
  // A worker process of a multi-worker run, driven by its parent over IPC.
  const w = await startWorker(JSON.parse(values.child) as WorkerSetup);
  process.on('message', async (m: string) => {
    if (m === 'measure') w.measure();
    if (m === 'figures') process.send?.(w.figures());
    if (m === 'stop') {
      await w.close();
      process.exit(0);
    }
  });
  process.send?.('ready');
} else {
  await main();
}

async function main(): Promise<void> {
  const N = Number(values.rollouts);
  const SECONDS = Number(values.seconds);
  const WORKERS = Number(values.workers);
  const concurrency = Number(values.concurrency);
  const NS = 'shop';
  const names = Array.from({ length: N }, (_, i) => `svc-${i}`);

  const dir = mkdtempSync(join(tmpdir(), 'vane-bench-capacity-'));
  const redis = await startRedisServer({ dir: join(dir, 'redis') });
  const port = await freePort();
  const sim = spawn(
    'node',
    [join(import.meta.dirname, '../bin/vane.mjs'), 'sandbox', 'kube', '--port', String(port)],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if ((await fetch(`${base}/version`).catch(() => undefined))?.ok) break;
    if (i > 300) throw new Error('kube simulator did not start');
    await sleep(100);
  }
  // Istio's request counter for every service, stable and canary healthy; one reporter, no histograms
  // (the success-rate check reads only istio_requests_total): 4 series per service.
  const exporter = await startIstioExporter({
    namespace: NS,
    services: names,
    reporters: ['source'],
    histograms: false,
  });
  exporter.setSubset('v1', { rps: 20 });
  exporter.setSubset('v2', { rps: 20 });
  const prom = await startPrometheus({
    dir: join(dir, 'prometheus'),
    targets: [{ job: 'istio', target: exporter.hostPort }],
    scrapeInterval: '2s',
  });

  async function post(path: string, body: unknown, attempt = 0): Promise<void> {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }).catch(async (e) => {
      // a loaded machine: a kept-alive socket closed under the request; seeding is not what is measured
      if (attempt >= 5) throw e;
      await sleep(200);
      return undefined;
    });
    if (!res) return post(path, body, attempt + 1);
    if (!res.ok && res.status !== 409) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  }
  await post('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
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

  const setup: WorkerSetup = { redisUrl: redis.url, kubeUrl: base, prometheusUrl: prom.url, concurrency };
  const self = await startWorker(setup);
  const domain = self.domain;
  const children: ChildProcess[] = [];
  for (let i = 1; i < WORKERS; i++) {
    const child = fork(
      import.meta.filename,
      ['--child', JSON.stringify({ ...setup, prefix: domain.prefix })],
      {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      },
    );
    await new Promise<void>((resolve) => child.once('message', () => resolve()));
    children.push(child);
  }
  const ask = (c: ChildProcess) =>
    new Promise<WorkerFigures>((resolve) => {
      c.once('message', (m) => resolve(m as WorkerFigures));
      c.send('figures');
    });

  const admin = connectRedis(redis.url, { role: 'client' });
  const memory = async (): Promise<number> =>
    Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1]);
  const redisCommands = async (): Promise<Map<string, number>> => {
    const text = await admin.info('commandstats');
    const calls = new Map<string, number>();
    for (const m of text.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) {
      if (m[1] !== 'info') calls.set(m[1]!, Number(m[2]));
    }
    return calls;
  };
  const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  // Prometheus needs two scrapes before rate() answers.
  await sleep(8_000);
  const memBefore = await memory();

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
          }),
        }),
      ),
    );
  }
  // every rollout at its first step
  for (;;) {
    const progressing = (await domain.ctx.store.countByPhase()).progressing ?? 0;
    if (progressing >= N && (await domain.ticks.depth())['ticks/wait'] === 0) break;
    if (Date.now() - t0 > 900_000) throw new Error('rollouts did not all start within 15 minutes');
    await sleep(500);
  }
  const startSeconds = (Date.now() - t0) / 1000;
  console.log(`${N} rollouts progressing after ${startSeconds.toFixed(1)} s`);
  await sleep(6_000); // settle into the 5s rhythm

  self.measure();
  for (const c of children) c.send('measure');
  const cmd0 = await redisCommands();
  const wall0 = Date.now();
  await sleep(SECONDS * 1000);
  const wall = (Date.now() - wall0) / 1000;
  const cmd1 = await redisCommands();
  const all = [self.figures(), ...(await Promise.all(children.map(ask)))];
  const sum = (f: (w: WorkerFigures) => number) => all.reduce((a, w) => a + f(w), 0);
  const ticks = sum((w) => w.ticks);
  const lateness = all.flatMap((w) => w.lateness).sort((a, b) => a - b);
  const q = (p: number) =>
    lateness[Math.min(lateness.length - 1, Math.floor(p * lateness.length))] ?? Number.NaN;
  const durations = all.flatMap((w) => w.durations).sort((a, b) => a - b);
  const dq = (p: number) =>
    durations[Math.min(durations.length - 1, Math.floor(p * durations.length))] ?? Number.NaN;
  if (process.env.BENCH_TIMELINE)
    console.log('worst lateness per second (ms):', JSON.stringify(all[0]!.worstBySecond));

  const phases = await domain.ctx.store.countByPhase();
  const memAfter = await memory();
  const sample = (await domain.ctx.store.list({ active: true, limit: 1 }))[0]!;
  const docBytes = Number(await admin.call('MEMORY', 'USAGE', `${domain.prefix}:r:rollout:${sample.id}`));
  const eventBytes = Number(await admin.call('MEMORY', 'USAGE', domain.ctx.store.eventsKey(sample.id)));
  const events = (await domain.ctx.store.events(sample.id)).length;

  const result = {
    rollouts: N,
    workers: WORKERS,
    seconds: Math.round(wall),
    expectedTicksPerSecond: N / 5,
    ticksPerSecond: round(ticks / wall, 1),
    latenessP50Ms: Math.round(q(0.5) * 1000),
    latenessP99Ms: Math.round(q(0.99) * 1000),
    latenessMaxMs: Math.round((lateness.at(-1) ?? 0) * 1000),
    tickDurationP50Ms: Math.round(dq(0.5) * 1000),
    tickDurationP99Ms: Math.round(dq(0.99) * 1000),
    cpuPerTickMs: round(sum((w) => w.cpuMs) / Math.max(1, ticks), 2),
    workerCpuPercentOfOneCore: all.map((w) => Math.round((w.cpuMs / 1000 / wall) * 100)),
    redisCommandsPerTick: round((total(cmd1) - total(cmd0)) / Math.max(1, ticks), 1),
    redisTopCommandsPerTick: Object.fromEntries(
      [...cmd1]
        .map(([k, v]) => [k, round((v - (cmd0.get(k) ?? 0)) / Math.max(1, ticks), 2)] as const)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 10),
    ),
    redisRoundTripsPerTick: round(sum((w) => w.redisSent) / Math.max(1, ticks), 1),
    kubeRequestsPerSecond: round(sum((w) => w.kubeRequests) / wall, 1),
    prometheusQueriesPerSecond: round(sum((w) => w.prometheusQueries) / wall, 1),
    redisBytesPerRollout: Math.round((memAfter - memBefore) / N),
    documentBytes: docBytes,
    eventStreamBytes: eventBytes,
    eventsPerRollout: events,
    startSeconds: round(startSeconds, 1),
    notProgressing: N - (phases.progressing ?? 0),
  };
  console.log(
    `over ${result.seconds} s: ${result.ticksPerSecond} ticks/s (expected ${result.expectedTicksPerSecond}), lateness p50 ${result.latenessP50Ms} ms / p99 ${result.latenessP99Ms} ms / max ${result.latenessMaxMs} ms, CPU per tick ${result.cpuPerTickMs} ms (workers at ${result.workerCpuPercentOfOneCore.join(', ')}% of a core)`,
  );
  console.log(
    `per tick: ${result.redisCommandsPerTick} Redis commands (INFO commandstats, those inside scripts included), ${result.redisRoundTripsPerTick} sent by the workers; ${result.kubeRequestsPerSecond} kube requests/s, ${result.prometheusQueriesPerSecond} Prometheus queries/s; Redis ${(result.redisBytesPerRollout / 1024).toFixed(1)} KB per rollout`,
  );
  console.log(`RESULT ${JSON.stringify(result)}`);

  for (const c of children) c.send('stop');
  await self.close();
  await admin.quit();
  sim.kill('SIGTERM');
  await prom.stop();
  await exporter.stop();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
