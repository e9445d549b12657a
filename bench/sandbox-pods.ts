/**
 * Cost of the sandbox's pod runtime: the time from a Deployment being stored to its pods Ready,
 * the memory of N pods (worker threads) against one demo app as a child process, the time a
 * template change takes to replace every pod, and what one pod serves.
 *
 *   npx tsx --expose-gc bench/sandbox-pods.ts [--pods 20] [--seconds 5]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { availableParallelism, loadavg } from 'node:os';
import { startKubeSimulator } from '../src/sandbox/kube/index.ts';
import { endpointsOf } from '../src/sandbox/pods/index.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const PODS = arg('pods', 20);
const SECONDS = arg('seconds', 5);

const MB = 1024 * 1024;
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

async function until(what: string, check: () => boolean, timeoutMs = 60_000): Promise<number> {
  const start = performance.now();
  while (!check()) {
    if (performance.now() - start > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(25);
  }
  return performance.now() - start;
}

/** RSS of one demo-like HTTP server as its own Node process, for comparison. */
async function childProcessRss(): Promise<number> {
  const child = spawn(
    process.execPath,
    ['-e', "require('http').createServer((q,s)=>s.end('{}')).listen(0,'127.0.0.1',()=>console.log('up'))"],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((r) => child.stdout.once('data', () => r()));
  await sleep(300);
  const rss = rssOf(child.pid!);
  child.kill();
  return rss;
}

function deployment(replicas: number, latency: string) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'default' },
    spec: {
      replicas,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' }, annotations: { 'sandbox.vane.dev/latency-ms': latency } },
        spec: { containers: [{ name: 'web', image: 'web:1' }] },
      },
    },
  };
}

/** Requests per second one pod serves on kept-alive connections (10 in flight). */
async function throughput(port: number, seconds: number): Promise<{ rps: number; p50: number; p99: number }> {
  const { Agent } = await import('node:http');
  const agent = new Agent({ keepAlive: true, maxSockets: 10 });
  const times: number[] = [];
  const end = performance.now() + seconds * 1000;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const t = performance.now();
      const req = request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
        res.resume();
        res.on('end', () => {
          times.push(performance.now() - t);
          resolve();
        });
      });
      req.on('error', reject);
      req.end();
    });
  await Promise.all(
    Array.from({ length: 10 }, async () => {
      while (performance.now() < end) await one();
    }),
  );
  agent.destroy();
  times.sort((a, b) => a - b);
  return {
    rps: times.length / seconds,
    p50: times[Math.floor(times.length * 0.5)]!,
    p99: times[Math.floor(times.length * 0.99)]!,
  };
}

const sim = await startKubeSimulator({ pods: true, log: () => {} });
sim.putObject({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'web', namespace: 'default' },
  spec: { selector: { app: 'web' }, ports: [{ port: 80 }] },
});
await sleep(200);
gc();
const rssBefore = process.memoryUsage().rss;

const cpuBefore = process.cpuUsage();
const ready = () => endpointsOf(sim, 'default', 'web')?.length ?? 0;
sim.putObject(deployment(1, '0'));
const first = await until('first pod Ready', () => ready() === 1);
sim.putObject(deployment(PODS, '0'));
const all = (await until(`${PODS} pods Ready`, () => ready() === PODS)) + first;
const cpu = process.cpuUsage(cpuBefore);
await sleep(500);
gc();
const rssPods = process.memoryUsage().rss;
const perPod = (rssPods - rssBefore) / PODS;
const child = await childProcessRss();

const oldPods = new Set(endpointsOf(sim, 'default', 'web')!.map((e) => e.pod));
sim.putObject(deployment(PODS, '5'));
const roll = await until(
  'roll to the new template',
  () => {
    const eps = endpointsOf(sim, 'default', 'web')!;
    return (
      eps.length === PODS && eps.every((e) => !oldPods.has(e.pod)) && sim.pods!.running().length === PODS
    );
  },
  30_000,
);
const port = endpointsOf(sim, 'default', 'web')![0]!.port;
sim.putObject(deployment(PODS, '0'));
await until('roll back to no latency', () => endpointsOf(sim, 'default', 'web')![0]?.port !== port, 30_000);
await sleep(300);
const served = await throughput(endpointsOf(sim, 'default', 'web')![0]!.port, SECONDS);

const tClose = performance.now();
await sim.close();
const closeMs = performance.now() - tClose;

console.log(`pod runtime, ${PODS} pods (worker threads), Node ${process.version}`);
console.log(`  first pod Ready after store:   ${first.toFixed(0)} ms`);
console.log(
  `  CPU to start ${PODS} pods:          ${((cpu.user + cpu.system) / 1000).toFixed(0)} ms (${((cpu.user + cpu.system) / 1000 / PODS).toFixed(0)} ms per pod, all threads; load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores)`,
);
console.log(
  `  ${PODS} pods Ready after store:    ${all.toFixed(0)} ms (${(all / PODS).toFixed(1)} ms per pod)`,
);
console.log(
  `  RSS for ${PODS} pods:             +${((rssPods - rssBefore) / MB).toFixed(1)} MB (${(perPod / MB).toFixed(1)} MB per pod)`,
);
console.log(
  `  one demo app as child process: ${(child / MB).toFixed(1)} MB RSS (${(child / perPod).toFixed(1)}× a worker pod)`,
);
console.log(`  template change, all ${PODS} pods replaced: ${roll.toFixed(0)} ms`);
console.log(
  `  one pod, 10 keep-alive connections: ${served.rps.toFixed(0)} req/s (p50 ${served.p50.toFixed(1)} ms, p99 ${served.p99.toFixed(1)} ms)`,
);
console.log(`  close (stops every pod):       ${closeMs.toFixed(0)} ms`);
