import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKubeTrafficRouter } from '../../src/mesh/kube-router.ts';
import { MeshError } from '../../src/mesh/types.ts';
import { loadFixture, reviewsTarget } from './fixtures.ts';

/**
 * A minimal API server for what the simulator cannot be made to do: an Istio that serves only
 * v1beta1, and a server that hangs. Everything else runs against the kube simulator.
 */
type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

let server: Server;
let handler: Handler;
const seen: string[] = [];

function kubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  const { port } = server.address() as AddressInfo;
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'u' }],
    currentContext: 'fake',
  });
  return kc;
}

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      seen.push(`${req.method} ${req.url}`);
      handler(req, res, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('kube adapter plumbing', () => {
  it('falls back to networking.istio.io/v1beta1 when the server has no v1', async () => {
    const vs = loadFixture('bookinfo.yaml').vs('reviews');
    const stored = {
      ...vs,
      apiVersion: 'networking.istio.io/v1beta1',
      metadata: { ...vs.metadata, resourceVersion: '7' },
    };
    seen.length = 0;
    handler = (req, res, body) => {
      if (req.url === '/apis/networking.istio.io/v1') return res.writeHead(404).end('404 page not found');
      if (req.url === '/apis/networking.istio.io/v1beta1')
        return json(res, 200, {
          kind: 'APIResourceList',
          groupVersion: 'networking.istio.io/v1beta1',
          resources: [],
        });
      if (req.url === '/apis/networking.istio.io/v1beta1/namespaces/bookinfo/virtualservices/reviews') {
        if (req.method === 'GET') return json(res, 200, stored);
        if (req.method === 'PUT') {
          const o = JSON.parse(body);
          expect(o.metadata.resourceVersion).toBe('7');
          return json(res, 200, { ...o, metadata: { ...o.metadata, resourceVersion: '8' } });
        }
      }
      json(res, 404, {
        kind: 'Status',
        status: 'Failure',
        reason: 'NotFound',
        code: 404,
        message: `${req.url} not found`,
      });
    };
    const router = createKubeTrafficRouter({ kubeConfig: kubeConfig(), backoffMs: 1 });
    expect(await router.apiVersion()).toBe('networking.istio.io/v1beta1');
    const r = await router.setWeights(reviewsTarget({ host: 'reviews' }), { stable: 80, canary: 20 });
    expect(r).toEqual({ changed: true, resourceVersion: '8' });
    expect(seen).toContain(
      'PUT /apis/networking.istio.io/v1beta1/namespaces/bookinfo/virtualservices/reviews',
    );
  });

  it('gives up on a server that does not answer, within the deadline and retries', async () => {
    handler = () => {
      // never answers
    };
    const router = createKubeTrafficRouter({
      kubeConfig: kubeConfig(),
      timeoutMs: 150,
      maxRetries: 1,
      backoffMs: 1,
    });
    const started = Date.now();
    const err = await router.readWeights(reviewsTarget({ host: 'reviews' })).catch((e) => e);
    expect(err).toBeInstanceOf(MeshError);
    expect(err.code).toBe('Unavailable');
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/^API group networking.istio.io\/v1: the API server did not answer/);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('maps a 403 to Forbidden, naming the object, without retrying', async () => {
    seen.length = 0;
    handler = (req, res) => {
      if (req.url === '/apis/networking.istio.io/v1')
        return json(res, 200, { kind: 'APIResourceList', resources: [] });
      json(res, 403, {
        kind: 'Status',
        status: 'Failure',
        reason: 'Forbidden',
        code: 403,
        message:
          'virtualservices.networking.istio.io "reviews" is forbidden: User "vane" cannot get resource',
      });
    };
    const router = createKubeTrafficRouter({ kubeConfig: kubeConfig(), backoffMs: 1 });
    const err = await router.readWeights(reviewsTarget({ host: 'reviews' })).catch((e) => e);
    expect(err).toMatchObject({ code: 'Forbidden', retryable: false });
    expect(err.message).toContain(
      'VirtualService bookinfo/reviews: forbidden (virtualservices.networking.istio.io "reviews" is forbidden',
    );
    // the object's GET, not retried (the drift watch's list of the namespace is a request of its own)
    expect(
      seen.filter((s) =>
        s.startsWith('GET /apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices/'),
      ),
    ).toHaveLength(1);
    await router.close();
  });
});
