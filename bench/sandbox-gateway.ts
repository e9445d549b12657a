/**
 * Throughput and added latency of the sandbox mesh gateway, against the same demo pod called
 * directly, in one run (the ratio is the figure; absolute numbers depend on the machine).
 *
 *   npx tsx bench/sandbox-gateway.ts [--seconds N] [--connections N]
 *
 * Three processes: the demo pod, the simulator + gateway, and autocannon here, so no two share an
 * event loop. The route is a weighted 90/10 split over two subsets (one pod each), as in a canary.
 */
import { fork } from 'node:child_process';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { startKubeSimulator } from '../src/sandbox/kube/index.ts';
import { startMeshGateway } from '../src/sandbox/mesh/gateway.ts';
import { POD_PORT_ANNOTATION } from '../src/sandbox/mesh/routes.ts';

type Autocannon = (opts: Record<string, unknown>) => Promise<{
  requests: { average: number };
  latency: { p50: number; p99: number; average: number };
  non2xx: number;
  errors: number;
}>;
// autocannon ships no types; the shape used here is declared above.
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const seconds = Number(arg('seconds') ?? 10);
const connections = Number(arg('connections') ?? 10);

async function servePod(): Promise<void> {
  const body = JSON.stringify({ pod: 'reviews-v1-bench-00000', namespace: 'bookinfo' });
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-sandbox-pod': 'reviews-v1-bench-00000' });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  process.send?.({ port: (server.address() as AddressInfo).port });
  process.on('disconnect', () => process.exit(0));
}

async function serveGateway(podPort: number): Promise<void> {
  const sim = await startKubeSimulator({ log: () => {} });
  sim.putObject({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'reviews', namespace: 'bookinfo' },
    spec: { selector: { app: 'reviews' }, ports: [{ port: 9080 }] },
  });
  sim.putObject({
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name: 'reviews', namespace: 'bookinfo' },
    spec: {
      host: 'reviews',
      subsets: [
        { name: 'v1', labels: { version: 'v1' } },
        { name: 'v2', labels: { version: 'v2' } },
      ],
    },
  });
  sim.putObject({
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'reviews', namespace: 'bookinfo' },
    spec: {
      hosts: ['reviews'],
      http: [
        {
          match: [{ headers: { 'end-user': { exact: 'jason' } } }],
          route: [{ destination: { host: 'reviews', subset: 'v2' } }],
        },
        {
          route: [
            { destination: { host: 'reviews', subset: 'v1' }, weight: 90 },
            { destination: { host: 'reviews', subset: 'v2' }, weight: 10 },
          ],
        },
      ],
    },
  });
  // Both subsets point at the one demo pod process, so both paths measure the same server.
  for (const v of ['v1', 'v2'])
    sim.putObject({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: `reviews-${v}-bench-00000`,
        namespace: 'bookinfo',
        labels: { app: 'reviews', version: v },
        annotations: { [POD_PORT_ANNOTATION]: String(podPort) },
      },
      spec: { containers: [{ name: 'app', image: 'demo' }] },
      status: { podIP: '127.0.0.1', conditions: [{ type: 'Ready', status: 'True' }] },
    });
  const gw = await startMeshGateway({ kubeConfig: sim.kubeConfig() });
  process.send?.({ url: gw.url });
  process.on(
    'disconnect',
    () =>
      void gw
        .close()
        .then(() => sim.close())
        .then(() => process.exit(0)),
  );
}

function child<T>(args: string[]): Promise<{ msg: T; stop(): void }> {
  const c = fork(fileURLToPath(import.meta.url), args, { execArgv: process.execArgv });
  return new Promise((resolve) =>
    c.once('message', (msg: T) => resolve({ msg, stop: () => c.disconnect() })),
  );
}

async function main(): Promise<void> {
  if (process.argv.includes('--pod')) return servePod();
  const gi = process.argv.indexOf('--gateway');
  if (gi >= 0) return serveGateway(Number(process.argv[gi + 1]));

  const pod = await child<{ port: number }>(['--pod']);
  const gw = await child<{ url: string }>(['--gateway', String(pod.msg.port)]);
  const direct = `http://127.0.0.1:${pod.msg.port}/reviews/1`;
  const via = `${gw.msg.url}/reviews/1`;
  console.log(
    `sandbox gateway vs direct to the pod: ${connections} connections, ${seconds}s each, Node ${process.version}`,
  );
  // A short warm-up of both paths (JIT, keep-alive pools).
  await autocannon({ url: direct, connections, duration: 2 });
  await autocannon({
    url: via,
    connections,
    duration: 2,
    headers: { host: 'reviews', 'x-sandbox-namespace': 'bookinfo' },
  });
  const d = await autocannon({ url: direct, connections, duration: seconds });
  const g = await autocannon({
    url: via,
    connections,
    duration: seconds,
    headers: { host: 'reviews', 'x-sandbox-namespace': 'bookinfo' },
  });
  const line = (name: string, r: typeof d) =>
    `${name}: ${Math.round(r.requests.average)} req/s, latency mean ${r.latency.average.toFixed(2)} ms, p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, non-2xx ${r.non2xx}, errors ${r.errors}`;
  console.log(line('direct to the pod', d));
  console.log(line('through the gateway', g));
  console.log(
    `ratio gateway/direct: ${(g.requests.average / d.requests.average).toFixed(2)} of the throughput; added latency mean ${(g.latency.average - d.latency.average).toFixed(2)} ms, p50 ${g.latency.p50 - d.latency.p50} ms, p99 ${g.latency.p99 - d.latency.p99} ms`,
  );
  gw.stop();
  pod.stop();
}

await main();
