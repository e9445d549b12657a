/**
 * Throughput of the kube simulator for the two calls vane makes most (GET and merge PATCH of a
 * VirtualService) and its memory with 10,000 stored objects.
 *
 *   npx tsx --expose-gc bench/kube-sim.ts [--crds FILE] [--seconds N]
 *
 * The simulator runs in a child process so autocannon does not share its event loop.
 */
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { startKubeSimulator } from '../src/sandbox/kube/index.ts';

type Autocannon = (opts: Record<string, unknown>) => Promise<{
  requests: { average: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
}>;
// autocannon ships no types; the shape used here is declared above.
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const crdsFile = arg('crds');
const seconds = Number(arg('seconds') ?? 10);

function reviews(name: string, w = 90) {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name, namespace: 'bookinfo', labels: { app: name } },
    spec: {
      hosts: [name],
      http: [
        {
          name: 'jason',
          match: [{ headers: { 'end-user': { exact: 'jason' } } }],
          route: [{ destination: { host: name, subset: 'v2' } }],
        },
        {
          name: 'default',
          route: [
            { destination: { host: name, subset: 'v1' }, weight: w },
            { destination: { host: name, subset: 'v2' }, weight: 100 - w },
          ],
        },
      ],
    },
  };
}

async function serve(): Promise<void> {
  const sim = await startKubeSimulator({ crdsFile, log: () => {} });
  sim.putObject(reviews('reviews'));
  process.send?.({ url: sim.url });
  process.on('disconnect', () => void sim.close().then(() => process.exit(0)));
}

async function memory(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const sim = await startKubeSimulator({ crdsFile, log: () => {} });
  gc?.();
  const before = process.memoryUsage();
  console.log(
    `memory at start (simulator loaded): heapUsed ${(before.heapUsed / 1048576).toFixed(1)} MB, RSS ${(before.rss / 1048576).toFixed(1)} MB`,
  );
  const t0 = performance.now();
  for (let i = 0; i < 10_000; i++) sim.putObject(reviews(`svc-${i}`, i % 101));
  const loadMs = performance.now() - t0;
  gc?.();
  const after = process.memoryUsage();
  const mb = (n: number) => `${n >= 0 ? '+' : ''}${(n / 1024 / 1024).toFixed(1)}`;
  console.log(
    `memory, 10,000 VirtualServices: heapUsed ${mb(after.heapUsed - before.heapUsed)} MB, RSS ${mb(after.rss - before.rss)} MB` +
      ` (stored through putObject with validation in ${(loadMs / 1000).toFixed(1)} s${gc ? '' : '; run with --expose-gc for steadier figures'})`,
  );
  await sim.close();
}

async function main(): Promise<void> {
  if (process.argv.includes('--serve')) return serve();
  const child = fork(fileURLToPath(import.meta.url), ['--serve', ...process.argv.slice(2)], {
    execArgv: process.execArgv,
  });
  const url = await new Promise<string>((resolve) =>
    child.once('message', (m: { url: string }) => resolve(m.url)),
  );
  const path = '/apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices/reviews';
  let flip = 0;
  const runs: [string, Record<string, unknown>][] = [
    ['GET VirtualService', { url: url + path }],
    [
      'merge PATCH VirtualService (weights change every request)',
      {
        url: url + path,
        method: 'PATCH',
        headers: { 'content-type': 'application/merge-patch+json' },
        setupClient: (client: { setBody(b: string): void; on(e: string, f: () => void): void }) => {
          const next = () => {
            flip = (flip + 1) % 100;
            client.setBody(JSON.stringify({ spec: { http: reviews('reviews', flip).spec.http } }));
          };
          next();
          client.on('response', next);
        },
      },
    ],
  ];
  console.log(
    `kube simulator ${crdsFile ? 'with' : 'without'} the CRDs file; 10 connections, ${seconds}s each`,
  );
  for (const [name, opts] of runs) {
    const r = await autocannon({ connections: 10, duration: seconds, ...opts });
    console.log(
      `${name}: ${Math.round(r.requests.average)} req/s, p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, non-2xx ${r.non2xx}, errors ${r.errors}`,
    );
  }
  child.disconnect();
  await memory();
}

await main();
