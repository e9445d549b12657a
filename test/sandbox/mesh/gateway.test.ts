import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type MeshGateway, startMeshGateway } from '../../../src/sandbox/mesh/gateway.ts';
import { type MeshResponse, meshRequest } from '../../../src/sandbox/mesh/load.ts';
import { startTestKube, type TestKube } from '../../helpers/kube.ts';
import { eventually } from '../../helpers/services.ts';
import { destinationRule, pod, service, virtualService } from './fixtures.ts';
import { startTestPod, type TestPod } from './test-pods.ts';

const NS = 'bookinfo';
const VS = { group: 'networking.istio.io', version: 'v1', namespace: NS, plural: 'virtualservices' };
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the mesh gateway with the kube simulator and real pod processes', () => {
  let kube: TestKube;
  let gw: MeshGateway;
  let custom: CustomObjectsApi;
  const pods: Record<string, TestPod> = {};

  /** Sends n requests, `concurrency` at a time, and counts answers by pod (or status and flags). */
  const send = async (n: number, r: Partial<Parameters<typeof meshRequest>[1]> = {}, concurrency = 16) => {
    const counts: Record<string, number> = {};
    const answers: MeshResponse[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) {
          next++;
          const a = await meshRequest(gw.url, { host: 'reviews', namespace: NS, ...r });
          answers.push(a);
          const key = a.status === 200 ? a.pod! : `${a.status} ${a.headers['x-sandbox-response-flags']}`;
          counts[key] = (counts[key] ?? 0) + 1;
        }
      }),
    );
    return { counts, answers };
  };

  /** Replaces the reviews route and waits until the gateway has compiled it. */
  const setRoute = async (http: Record<string, unknown>) => {
    const vs = kube.sim.putObject(virtualService('reviews', NS, { hosts: ['reviews'], http: [http] }));
    const rv = String(vs.metadata.resourceVersion);
    await eventually(async () => (rvOf(gw) === rv ? true : undefined), 5_000, 5);
  };

  const rvOf = (g: MeshGateway) =>
    g.table().virtualServices.find((v) => v.name === 'reviews')?.resourceVersion;
  const weightsOf = (g: MeshGateway) =>
    g
      .table()
      .virtualServices.find((v) => v.name === 'reviews')
      ?.http[0]?.destinations.map((d) => d.weight)
      .join('/');

  beforeAll(async () => {
    kube = await startTestKube();
    const sim = kube.sim;
    sim.putObject(service('reviews', NS, { app: 'reviews' }));
    sim.putObject(
      destinationRule('reviews', NS, 'reviews', {
        v1: { version: 'v1' },
        v2: { version: 'v2' },
        v3: { version: 'v3' },
      }),
    );
    for (const v of ['v1', 'v2', 'v3'])
      pods[v] = await startTestPod(sim, `reviews-${v}-7f9c8d-abcde`, NS, { app: 'reviews', version: v });
    sim.putObject(
      virtualService('reviews', NS, {
        hosts: ['reviews'],
        http: [{ route: [{ destination: { host: 'reviews', subset: 'v1' } }] }],
      }),
    );
    gw = await startMeshGateway({ kubeConfig: sim.kubeConfig() });
    custom = sim.kubeConfig().makeApiClient(CustomObjectsApi);
    await eventually(async () => (gw.table().endpoints.get(NS)?.length === 3 ? true : undefined));
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.all(Object.values(pods).map((p) => p.close()));
    await kube?.stop();
  });
  beforeEach(() => {
    for (const p of Object.values(pods)) p.behave({});
  });

  it('splits 80/20 by the VirtualService weights over 1,000 requests, counted by x-sandbox-pod', async () => {
    await setRoute({
      route: [
        { destination: { host: 'reviews', subset: 'v1' }, weight: 80 },
        { destination: { host: 'reviews', subset: 'v2' }, weight: 20 },
      ],
    });
    const { counts } = await send(1000);
    const v1 = counts[pods.v1!.name] ?? 0;
    const v2 = counts[pods.v2!.name] ?? 0;
    console.log(`80/20 split over 1000 requests: v1 ${v1}, v2 ${v2}`);
    expect(v1 + v2).toBe(1000);
    // 5 standard deviations of a binomial share of 0.2 over 1000 is 0.063.
    expect(Math.abs(v2 / 1000 - 0.2)).toBeLessThan(0.063);
  });

  it('follows a VirtualService patched with kubectl or client-node within 100 ms', async () => {
    await setRoute({
      route: [
        { destination: { host: 'reviews', subset: 'v1' }, weight: 100 },
        { destination: { host: 'reviews', subset: 'v2' }, weight: 0 },
      ],
    });
    const body = (w1: number, w2: number) => ({
      spec: {
        http: [
          {
            route: [
              { destination: { host: 'reviews', subset: 'v1' }, weight: w1 },
              { destination: { host: 'reviews', subset: 'v2' }, weight: w2 },
            ],
          },
        ],
      },
    });
    // client-node: measure how long after the API answered the gateway routes by the new weights.
    await custom.patchNamespacedCustomObject({ ...VS, name: 'reviews', body: body(0, 100) }, mergePatch);
    const patched = performance.now();
    await eventually(async () => (weightsOf(gw) === '0/100' ? true : undefined), 1_000, 1);
    const lag = performance.now() - patched;
    console.log(`weight change seen by the gateway ${lag.toFixed(1)} ms after the API answered`);
    expect(lag).toBeLessThan(100);
    await sleep(Math.max(0, 100 - lag));
    expect((await send(50)).counts).toEqual({ [pods.v2!.name]: 50 });

    // kubectl: every request sent 100 ms after kubectl returns follows the new weights.
    const r = await kube.kubectl([
      'patch',
      'virtualservice',
      'reviews',
      '-n',
      NS,
      '--type=merge',
      '-p',
      JSON.stringify(body(100, 0)),
    ]);
    expect(r.stderr).toBe('');
    await sleep(100);
    expect((await send(50)).counts).toEqual({ [pods.v1!.name]: 50 });
  });

  it('answers 504 UT when the route timeout passes first', async () => {
    await setRoute({ route: [{ destination: { host: 'reviews', subset: 'v1' } }], timeout: '200ms' });
    pods.v1!.behave({ delayMs: 1_500 });
    const t0 = performance.now();
    const a = await meshRequest(gw.url, { host: 'reviews', namespace: NS });
    const took = performance.now() - t0;
    expect(a.status).toBe(504);
    expect(a.headers['x-sandbox-response-flags']).toBe('UT');
    expect(a.body).toBe('upstream request timeout');
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(1_200);
  });

  it('retries 5xx up to attempts, counting attempts on the pod; without retries the error reaches the caller', async () => {
    await setRoute({
      route: [{ destination: { host: 'reviews', subset: 'v1' } }],
      retries: { attempts: 3, retryOn: '5xx' },
    });
    const before = pods.v1!.received.length;
    pods.v1!.behave({ failNext: 2 });
    const ok = await meshRequest(gw.url, { host: 'reviews', namespace: NS });
    expect(ok.status).toBe(200);
    const seen = pods.v1!.received.slice(before);
    expect(seen.map((s) => s.headers['x-envoy-attempt-count'])).toEqual(['1', '2', '3']);

    pods.v1!.behave({ failNext: 5 });
    const exhausted = await meshRequest(gw.url, { host: 'reviews', namespace: NS });
    expect(exhausted.status).toBe(500);
    expect(exhausted.headers['x-sandbox-response-flags']).toBe('URX');

    await setRoute({ route: [{ destination: { host: 'reviews', subset: 'v1' } }], retries: { attempts: 0 } });
    pods.v1!.behave({ failNext: 1 });
    expect((await meshRequest(gw.url, { host: 'reviews', namespace: NS })).status).toBe(500);
  });

  it("applies Istio's default retries when a route sets none: a 503 is retried, a 500 is not", async () => {
    await setRoute({ route: [{ destination: { host: 'reviews', subset: 'v1' } }] });
    pods.v1!.behave({ failNext: 2, errorStatus: 503 });
    expect((await meshRequest(gw.url, { host: 'reviews', namespace: NS })).status).toBe(200);
    pods.v1!.behave({ failNext: 3, errorStatus: 503 });
    const exhausted = await meshRequest(gw.url, { host: 'reviews', namespace: NS });
    expect([exhausted.status, exhausted.headers['x-sandbox-response-flags']]).toEqual([503, 'URX']);
    pods.v1!.behave({ failNext: 1, errorStatus: 500 });
    expect((await meshRequest(gw.url, { host: 'reviews', namespace: NS })).status).toBe(500);
  });

  it('retries a per-try timeout and a connection refused on another pod of the subset', async () => {
    await setRoute({
      route: [{ destination: { host: 'reviews', subset: 'v1' } }],
      retries: { attempts: 2, perTryTimeout: '150ms', retryOn: 'gateway-error,connect-failure' },
      timeout: '3s',
    });
    pods.v1!.behave({ slowNext: { n: 1, ms: 1_000 } });
    const t0 = performance.now();
    const a = await meshRequest(gw.url, { host: 'reviews', namespace: NS });
    expect(a.status).toBe(200);
    expect(performance.now() - t0).toBeLessThan(900);

    // A second v1 pod whose process is gone: connections are refused, the retry goes to the live one.
    kube.sim.putObject(pod('reviews-v1-7f9c8d-dead1', NS, { app: 'reviews', version: 'v1' }, 1));
    await eventually(async () => (gw.table().endpoints.get(NS)?.length === 4 ? true : undefined));
    try {
      const { counts } = await send(20);
      expect(counts).toEqual({ [pods.v1!.name]: 20 });
    } finally {
      kube.sim.deleteObject('v1', 'Pod', NS, 'reviews-v1-7f9c8d-dead1');
    }
  });

  it('injects an abort (FI) to a share of requests and a delay (DI) to all', async () => {
    await setRoute({
      route: [{ destination: { host: 'reviews', subset: 'v1' } }],
      fault: { abort: { httpStatus: 418, percentage: { value: 50 } } },
    });
    const before = pods.v1!.received.length;
    const { counts } = await send(400);
    const aborted = counts['418 FI'] ?? 0;
    expect(aborted + (counts[pods.v1!.name] ?? 0)).toBe(400);
    expect(Math.abs(aborted / 400 - 0.5)).toBeLessThan(0.125);
    // Aborted requests never reach the pod.
    expect(pods.v1!.received.length - before).toBe(400 - aborted);

    await setRoute({
      route: [{ destination: { host: 'reviews', subset: 'v1' } }],
      fault: { delay: { fixedDelay: '300ms', percentage: { value: 100 } } },
    });
    const t0 = performance.now();
    const a = await meshRequest(gw.url, { host: 'reviews', namespace: NS });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    expect(a.status).toBe(200);
    expect(a.pod).toBe(pods.v1!.name);
    expect(a.headers['x-sandbox-response-flags']).toBe('DI');
  });

  it('mirrors a copy to the mirror subset and ignores its answer', async () => {
    await setRoute({
      route: [{ destination: { host: 'reviews', subset: 'v1' } }],
      mirror: { host: 'reviews', subset: 'v3' },
      mirrorPercentage: { value: 100 },
    });
    pods.v3!.behave({ errorRate: 1, delayMs: 50 });
    const before = pods.v3!.received.length;
    const { counts } = await send(40);
    expect(counts).toEqual({ [pods.v1!.name]: 40 });
    await eventually(async () => (pods.v3!.received.length - before === 40 ? true : undefined), 5_000);
    const copy = pods.v3!.received.at(-1)!;
    expect(copy.host).toBe('reviews-shadow');
  });

  it('answers directResponse and redirect routes itself, and applies header operations', async () => {
    kube.sim.putObject(
      virtualService('reviews', NS, {
        hosts: ['reviews'],
        http: [
          {
            match: [{ uri: { exact: '/gone' } }],
            directResponse: { status: 410, body: { string: 'moved on' } },
          },
          { match: [{ uri: { prefix: '/old' } }], redirect: { uri: '/new', authority: 'ratings' } },
          {
            route: [{ destination: { host: 'reviews', subset: 'v1' } }],
            headers: {
              request: { set: { 'x-routed': 'yes' }, remove: ['x-secret'] },
              response: { add: { 'x-served-by': 'mesh' } },
            },
          },
        ],
      }),
    );
    const rv = String(
      kube.sim.getObject('networking.istio.io/v1', 'VirtualService', NS, 'reviews').metadata.resourceVersion,
    );
    await eventually(async () => (rvOf(gw) === rv ? true : undefined), 5_000, 5);
    const before = pods.v1!.received.length;
    const gone = await meshRequest(gw.url, { host: 'reviews', namespace: NS, path: '/gone' });
    expect([gone.status, gone.body, gone.pod]).toEqual([410, 'moved on', undefined]);
    const old = await meshRequest(gw.url, { host: 'reviews:9080', namespace: NS, path: '/old/1' });
    expect([old.status, old.headers.location]).toEqual([301, 'http://ratings/new']);
    expect(pods.v1!.received.length).toBe(before);
    const ok = await meshRequest(gw.url, { host: 'reviews', namespace: NS, headers: { 'x-secret': 's' } });
    expect([ok.status, ok.headers['x-served-by']]).toEqual([200, 'mesh']);
    const seen = pods.v1!.received.at(-1)!;
    expect([seen.headers['x-routed'], seen.headers['x-secret']]).toEqual(['yes', undefined]);
  });

  it('answers 404 NR for an unknown host and 503 UH when the subset has no ready pod', async () => {
    const nr = await meshRequest(gw.url, { host: 'nowhere', namespace: NS });
    expect([nr.status, nr.headers['x-sandbox-response-flags']]).toEqual([404, 'NR']);
    kube.sim.putObject(
      destinationRule('reviews', NS, 'reviews', {
        v1: { version: 'v1' },
        v2: { version: 'v2' },
        v3: { version: 'v3' },
        v4: { version: 'v4' },
      }),
    );
    await setRoute({ route: [{ destination: { host: 'reviews', subset: 'v4' } }] });
    await eventually(
      async () =>
        (await meshRequest(gw.url, { host: 'reviews', namespace: NS })).status === 503 ? true : undefined,
      5_000,
      20,
    );
    const uh = await meshRequest(gw.url, { host: 'reviews', namespace: NS });
    expect([uh.status, uh.headers['x-sandbox-response-flags'], uh.body]).toEqual([
      503,
      'UH',
      'no healthy upstream',
    ]);
  });

  it('reports Istio request metrics with both reporters and Istio label values', async () => {
    await setRoute({ route: [{ destination: { host: 'reviews', subset: 'v2' } }] });
    await send(5, { sourceWorkload: 'productpage-v1' });
    const text = await (await fetch(`${gw.url}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
    const line = (reporter: string) =>
      text
        .split('\n')
        .find(
          (l) =>
            l.startsWith('istio_requests_total{') &&
            l.includes(`reporter="${reporter}"`) &&
            l.includes('source_workload="productpage-v1"') &&
            l.includes('destination_version="v2"'),
        );
    for (const reporter of ['source', 'destination']) {
      const l = line(reporter);
      expect(l, reporter).toBeDefined();
      for (const kv of [
        'source_workload_namespace="bookinfo"',
        'destination_service="reviews.bookinfo.svc.cluster.local"',
        'destination_service_name="reviews"',
        'destination_service_namespace="bookinfo"',
        'destination_workload="reviews-v2"',
        'destination_workload_namespace="bookinfo"',
        'destination_app="reviews"',
        'response_code="200"',
        'response_flags="-"',
        'request_protocol="http"',
        `connection_security_policy="${reporter === 'destination' ? 'mutual_tls' : 'unknown'}"`,
      ])
        expect(l).toContain(kv);
      expect(Number(l!.split(' ').at(-1))).toBeGreaterThanOrEqual(5);
    }
    expect(text).toMatch(/istio_request_duration_milliseconds_bucket\{le="0\.5",reporter="source"/);
    // What the gateway answered itself (fault aborts, no route) only the caller's proxy reports.
    const reporters = (needle: string) =>
      new Set(
        text
          .split('\n')
          .filter((l) => l.startsWith('istio_requests_total{') && l.includes(needle))
          .map((l) => /reporter="(\w+)"/.exec(l)?.[1]),
      );
    expect(reporters('response_flags="FI"')).toEqual(new Set(['source']));
    expect(reporters('response_flags="NR"')).toEqual(new Set(['source']));
    expect(reporters('destination_service="nowhere.bookinfo.svc.cluster.local"')).toEqual(
      new Set(['source']),
    );
    expect(text).toContain('le="3600000"');
  });

  it('serves its own /healthz and /routes when addressed by its own address', async () => {
    const health = await fetch(`${gw.url}/healthz`, { signal: AbortSignal.timeout(5_000) });
    expect([health.status, await health.text()]).toEqual([200, 'ok']);
    const routes = (await (
      await fetch(`${gw.url}/routes`, { signal: AbortSignal.timeout(5_000) })
    ).json()) as {
      virtualServices: { namespace: string; name: string; hosts: string[] }[];
      endpoints: string[];
      problems: string[];
    };
    expect(routes.virtualServices.map((v) => `${v.namespace}/${v.name} ${v.hosts.join()}`)).toEqual([
      'bookinfo/reviews reviews.bookinfo.svc.cluster.local',
    ]);
    expect(routes.endpoints).toContain(`bookinfo/${pods.v1!.name} 127.0.0.1:${pods.v1!.port}`);
    expect(routes.problems).toEqual([]);
  });

  it('resolves a short host name in the caller namespace, a qualified one anywhere', async () => {
    await setRoute({ route: [{ destination: { host: 'reviews', subset: 'v1' } }] });
    const a = await meshRequest(gw.url, { host: 'reviews', namespace: 'default' });
    expect([a.status, a.headers['x-sandbox-response-flags']]).toEqual([404, 'NR']);
    const b = await meshRequest(gw.url, {
      host: 'reviews.bookinfo.svc.cluster.local:9080',
      namespace: 'default',
    });
    expect(b.pod).toBe(pods.v1!.name);
  });
});
