import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KubeSimulator } from '../../../src/sandbox/kube/index.ts';
import { pod } from './fixtures.ts';

/**
 * Stand-ins for the pod runtime's demo-app processes, so the gateway is tested on its own: each is
 * a real HTTP server answering JSON `{ pod }` with the header `x-sandbox-pod`, whose errors and
 * delays the test sets, and a Pod object in the simulator pointing at it (the runtime's contract).
 */

export interface Behaviour {
  /** Share of requests answered with `errorStatus`, 0..1. */
  errorRate?: number;
  /** Default 500. */
  errorStatus?: number;
  /** The next n requests fail with errorStatus, whatever errorRate says. */
  failNext?: number;
  /** Delay of every answer. */
  delayMs?: number;
  /** The next n requests wait this long (then delayMs applies). */
  slowNext?: { n: number; ms: number };
}

export interface TestPod {
  name: string;
  port: number;
  /** Requests received (Host and headers), newest last. */
  received: { host: string; path: string; headers: IncomingHttpHeaders }[];
  behave(b: Behaviour): void;
  close(): Promise<void>;
}

export async function startTestPod(
  sim: KubeSimulator,
  name: string,
  namespace: string,
  labels: Record<string, string>,
  behaviour: Behaviour = {},
): Promise<TestPod> {
  let b: Behaviour = { ...behaviour };
  const received: TestPod['received'] = [];
  const server: Server = createServer((req, res) => {
    received.push({ host: req.headers.host ?? '', path: req.url ?? '/', headers: req.headers });
    if (received.length > 10_000) received.splice(0, 5_000);
    req.resume();
    req.on('end', () => {
      let delay = b.delayMs ?? 0;
      if (b.slowNext && b.slowNext.n > 0) {
        b.slowNext.n--;
        delay = b.slowNext.ms;
      }
      let fail = Math.random() < (b.errorRate ?? 0);
      if (b.failNext && b.failNext > 0) {
        b.failNext--;
        fail = true;
      }
      const answer = () => {
        if (res.destroyed) return;
        const body = JSON.stringify({ pod: name, namespace, labels, path: req.url });
        res.writeHead(fail ? (b.errorStatus ?? 500) : 200, {
          'content-type': 'application/json',
          'x-sandbox-pod': name,
        });
        res.end(body);
      };
      if (delay > 0) setTimeout(answer, delay);
      else answer();
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  sim.putObject(pod(name, namespace, labels, port));
  return {
    name,
    port,
    received,
    behave(nb) {
      b = { ...nb };
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
