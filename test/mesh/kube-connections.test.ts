import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeConnections } from '../../src/mesh/kube-connections.ts';
import { createKubeClients, createKubeTrafficRouter } from '../../src/mesh/kube-router.ts';
import { type KubeSimulator, startKubeSimulator } from '../../src/sandbox/kube/index.ts';
import { loadFixture } from './fixtures.ts';

/**
 * Every Kubernetes call of a process goes through one keep-alive pool per cluster: 1,000 calls open
 * a handful of connections, not 1,000 — over plain http (skipTLSVerify, which made client-node build
 * an Agent per request) and over TLS with a CA (a TLS front to the simulator with its own certificate).
 */
const bookinfo = loadFixture('bookinfo.yaml');
const CALLS = 1_000;
const PARALLEL = 10;

let sim: KubeSimulator;
let tlsFront: Server;
let tlsAccepted = 0;
let caPem = '';
let dir = '';

beforeAll(async () => {
  sim = await startKubeSimulator({ log: () => {} });
  for (const o of [bookinfo.vs('reviews'), bookinfo.dr('reviews')]) sim.putObject(o);
  sim.putObject({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'reviews-v3', namespace: 'bookinfo' },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'reviews', version: 'v3' } },
      template: {
        metadata: { labels: { app: 'reviews', version: 'v3' } },
        spec: { containers: [{ name: 'r', image: 'r' }] },
      },
    },
  });
  // A TLS front with a self-signed certificate for 127.0.0.1, passing bytes on to the simulator.
  dir = mkdtempSync(join(tmpdir(), 'vane-kube-tls-'));
  execFileSync('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    join(dir, 'key.pem'),
    '-out',
    join(dir, 'cert.pem'),
  ]);
  caPem = readFileSync(join(dir, 'cert.pem'), 'utf8');
  tlsFront = createTlsServer({ key: readFileSync(join(dir, 'key.pem')), cert: caPem }, (socket) => {
    tlsAccepted++;
    const upstream = connect(sim.port, '127.0.0.1');
    socket.pipe(upstream).pipe(socket);
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
  });
  await new Promise<void>((r) => tlsFront.listen(0, '127.0.0.1', r));
}, 30_000);

afterAll(async () => {
  tlsFront?.close();
  await sim?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function tlsKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name: 'tls',
        server: `https://127.0.0.1:${(tlsFront.address() as AddressInfo).port}`,
        caData: Buffer.from(caPem).toString('base64'),
      },
    ],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'tls', cluster: 'tls', user: 'u' }],
    currentContext: 'tls',
  });
  return kc;
}

/** 1,000 calls, PARALLEL at a time, alternating the router's reads and the clients' workload reads. */
async function thousandCalls(kubeConfig: KubeConfig, connections: KubeConnections): Promise<void> {
  const router = createKubeTrafficRouter({ kubeConfig, connections, timeoutMs: 10_000 });
  const clients = createKubeClients({ kubeConfig, connections, timeoutMs: 10_000 });
  for (let i = 0; i < CALLS; i += PARALLEL) {
    await Promise.all(
      Array.from({ length: PARALLEL }, async (_, j) => {
        if ((i + j) % 2 === 0) {
          const vs = await router.getVirtualService('bookinfo', 'reviews');
          expect(vs?.metadata?.name).toBe('reviews');
        } else {
          const w = await clients.readWorkload('bookinfo', 'Deployment', 'reviews-v3');
          expect(w.desired).toBe(1);
        }
      }),
    );
  }
}

describe('one keep-alive connection pool per cluster', () => {
  it('client-node on its own opens a new connection per call when a TLS option is set (why the pool exists)', async () => {
    const api = sim.kubeConfig().makeApiClient(CustomObjectsApi);
    const before = sim.connectionsAccepted();
    for (let i = 0; i < 30; i++) {
      await api.getNamespacedCustomObject({
        group: 'networking.istio.io',
        version: 'v1',
        namespace: 'bookinfo',
        plural: 'virtualservices',
        name: 'reviews',
      });
    }
    expect(sim.connectionsAccepted() - before).toBeGreaterThanOrEqual(25);
  });

  it('plain http with skipTLSVerify: 1,000 calls of the router and the clients share a few connections', async () => {
    const connections = new KubeConnections();
    const before = sim.connectionsAccepted();
    try {
      await thousandCalls(sim.kubeConfig(), connections);
    } finally {
      await connections.close();
    }
    const opened = sim.connectionsAccepted() - before;
    expect(opened).toBeGreaterThanOrEqual(1);
    // at most the pool's size (16 by default), never one per call
    expect(opened).toBeLessThanOrEqual(16);
  }, 60_000);

  it('TLS with a CA: 1,000 calls share a few TLS connections, and the certificate is still checked', async () => {
    const connections = new KubeConnections();
    const before = tlsAccepted;
    try {
      await thousandCalls(tlsKubeConfig(), connections);
    } finally {
      await connections.close();
    }
    const opened = tlsAccepted - before;
    expect(opened).toBeGreaterThanOrEqual(1);
    expect(opened).toBeLessThanOrEqual(16);

    // A kubeconfig without the CA is refused by the same pooled path: TLS verification is kept.
    const untrusted = tlsKubeConfig();
    untrusted.clusters[0] = { ...untrusted.clusters[0]!, caData: undefined };
    const other = new KubeConnections();
    const router = createKubeTrafficRouter({
      kubeConfig: untrusted,
      connections: other,
      maxRetries: 0,
      timeoutMs: 5_000,
    });
    try {
      await expect(router.getVirtualService('bookinfo', 'reviews')).rejects.toThrow();
    } finally {
      await other.close();
    }
  }, 60_000);
});
