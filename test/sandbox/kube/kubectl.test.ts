// biome-ignore-all lint/suspicious/noExplicitAny: tests read Kubernetes objects as untyped JSON.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { startTestKube, type TestKube } from '../../helpers/kube.ts';
import { eventually } from '../../helpers/services.ts';

// Shapes from Istio's documentation (bookinfo request routing, traffic shifting, gateways).
const NAMESPACE = `apiVersion: v1
kind: Namespace
metadata:
  name: bookinfo
`;

const REVIEWS_VS_V1ALPHA3 = `apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: reviews
  namespace: bookinfo
  labels:
    app: reviews
spec:
  hosts:
  - reviews
  http:
  - name: jason
    match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: reviews
        subset: v2
  - name: default
    route:
    - destination:
        host: reviews
        subset: v1
      weight: 75
    - destination:
        host: reviews
        subset: v3
      weight: 25
`;

const REVIEWS_DR_V1BETA1 = `apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: reviews
  namespace: bookinfo
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: RANDOM
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
    trafficPolicy:
      loadBalancer:
        simple: ROUND_ROBIN
  - name: v3
    labels:
      version: v3
`;

const BOOKINFO_GATEWAY_V1 = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: bookinfo-gateway
  namespace: bookinfo
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 8080
      name: http
      protocol: HTTP
    hosts:
    - "*"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bookinfo
  namespace: bookinfo
spec:
  hosts:
  - "*"
  gateways:
  - bookinfo-gateway
  http:
  - match:
    - uri:
        exact: /productpage
    - uri:
        prefix: /static
    - uri:
        exact: /login
    route:
    - destination:
        host: productpage
        port:
          number: 9080
    timeout: 10s
    retries:
      attempts: 3
      perTryTimeout: 2s
`;

describe('kubectl against the kube simulator', () => {
  let kube: TestKube;
  beforeAll(async () => {
    kube = await startTestKube();
  });
  afterAll(async () => {
    await kube?.stop();
  });

  const ok = async (args: string[], input?: string) => {
    const r = await kube.kubectl(args, { input });
    expect(r.stderr, `kubectl ${args.join(' ')}`).not.toMatch(/error/i);
    expect(r.code, `kubectl ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };

  it('applies VirtualServices, DestinationRules and Gateways at v1alpha3, v1beta1 and v1', async () => {
    const out = await ok(
      ['apply', '-f', '-'],
      [NAMESPACE, REVIEWS_VS_V1ALPHA3, REVIEWS_DR_V1BETA1, BOOKINFO_GATEWAY_V1].join('---\n'),
    );
    expect(out).toContain('namespace/bookinfo created');
    expect(out).toContain('virtualservice.networking.istio.io/reviews created');
    expect(out).toContain('destinationrule.networking.istio.io/reviews created');
    expect(out).toContain('gateway.networking.istio.io/bookinfo-gateway created');
    expect(out).toContain('virtualservice.networking.istio.io/bookinfo created');
  });

  it('lists them by short name with their columns', async () => {
    const out = await ok(['get', 'vs', '-n', 'bookinfo']);
    expect(out).toMatch(/NAME\s+GATEWAYS\s+HOSTS\s+AGE/);
    expect(out).toMatch(/bookinfo\s+\["bookinfo-gateway"\]\s+\["\*"\]/);
    expect(out).toMatch(/reviews\s+\["reviews"\]/);
    expect(await ok(['get', 'dr,gw', '-n', 'bookinfo', '-o', 'name'])).toBe(
      'destinationrule.networking.istio.io/reviews\ngateway.networking.istio.io/bookinfo-gateway\n',
    );
  });

  it('round-trips `get vs,dr -o yaml`: the specs come back as applied, at the served version, with server metadata', async () => {
    const list = parseYaml(await ok(['get', 'vs,dr', '-n', 'bookinfo', '-o', 'yaml']));
    expect(list.kind).toBe('List');
    const reviewsVs = list.items.find(
      (i: any) => i.kind === 'VirtualService' && i.metadata.name === 'reviews',
    );
    const reviewsDr = list.items.find((i: any) => i.kind === 'DestinationRule');
    expect(reviewsVs.apiVersion).toBe('networking.istio.io/v1');
    expect(reviewsVs.spec).toEqual(parseYaml(REVIEWS_VS_V1ALPHA3).spec);
    expect(reviewsDr.spec).toEqual(parseYaml(REVIEWS_DR_V1BETA1).spec);
    const gateway = parseAllDocuments(BOOKINFO_GATEWAY_V1)[1]!.toJS();
    expect(list.items.find((i: any) => i.metadata.name === 'bookinfo').spec).toEqual(gateway.spec);
    for (const item of list.items) {
      expect(item.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
      expect(Number(item.metadata.resourceVersion)).toBeGreaterThan(0);
      expect(item.metadata.generation).toBe(1);
      expect(item.metadata.creationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    }
    // The same stored object, seen through each served version.
    for (const v of ['v1', 'v1beta1', 'v1alpha3']) {
      const one = parseYaml(
        await ok([
          'get',
          `virtualservices.${v}.networking.istio.io`,
          'reviews',
          '-n',
          'bookinfo',
          '-o',
          'yaml',
        ]),
      );
      expect(one.apiVersion).toBe(`networking.istio.io/${v}`);
      expect(one.metadata.uid).toBe(reviewsVs.metadata.uid);
    }
  });

  it('re-applies a changed file as a merge patch and bumps generation', async () => {
    kube.sim.clearWriteLog();
    const changed = REVIEWS_VS_V1ALPHA3.replace('weight: 75', 'weight: 50').replace(
      'weight: 25',
      'weight: 50',
    );
    expect(await ok(['apply', '-f', '-'], changed)).toContain(
      'virtualservice.networking.istio.io/reviews configured',
    );
    const vs = kube.sim.getObject('networking.istio.io/v1', 'VirtualService', 'bookinfo', 'reviews');
    expect(vs.spec.http[1].route.map((r: any) => r.weight)).toEqual([50, 50]);
    expect(vs.metadata.generation).toBe(2);
    expect(kube.sim.writeLog()).toMatchObject([
      {
        verb: 'patch',
        patchType: 'application/merge-patch+json',
        resource: 'virtualservices',
        namespace: 'bookinfo',
        name: 'reviews',
      },
    ]);
    expect(await ok(['apply', '-f', '-'], changed)).toContain(
      'virtualservice.networking.istio.io/reviews unchanged',
    );
  });

  it('patches with --type=merge and --type=json (a failing test operation changes nothing)', async () => {
    await ok([
      'patch',
      'vs',
      'reviews',
      '-n',
      'bookinfo',
      '--type=merge',
      '-p',
      '{"spec":{"gateways":["mesh"]}}',
    ]);
    expect(
      kube.sim.getObject('networking.istio.io/v1', 'VirtualService', 'bookinfo', 'reviews').spec.gateways,
    ).toEqual(['mesh']);

    const shift = JSON.stringify([
      { op: 'test', path: '/spec/http/1/route/0/weight', value: 50 },
      { op: 'replace', path: '/spec/http/1/route/0/weight', value: 90 },
      { op: 'replace', path: '/spec/http/1/route/1/weight', value: 10 },
    ]);
    await ok(['patch', 'vs', 'reviews', '-n', 'bookinfo', '--type=json', '-p', shift]);
    const before = kube.sim.getObject('networking.istio.io/v1', 'VirtualService', 'bookinfo', 'reviews');
    expect(before.spec.http[1].route.map((r: any) => r.weight)).toEqual([90, 10]);

    const stale = await kube.kubectl([
      'patch',
      'vs',
      'reviews',
      '-n',
      'bookinfo',
      '--type=json',
      '-p',
      shift,
    ]);
    expect(stale.code).not.toBe(0);
    expect(stale.stderr).toContain('testing value /spec/http/1/route/0/weight failed');
    expect(
      kube.sim.getObject('networking.istio.io/v1', 'VirtualService', 'bookinfo', 'reviews').metadata
        .resourceVersion,
    ).toBe(before.metadata.resourceVersion);
  });

  it('refuses an invalid VirtualService with 422 naming the field', async () => {
    const fifty = REVIEWS_VS_V1ALPHA3.replace('name: reviews', 'name: bad-weight').replace(
      'weight: 75',
      'weight: fifty',
    );
    const r1 = await kube.kubectl(['apply', '-f', '-'], { input: fifty });
    expect(r1.code).not.toBe(0);
    expect(r1.stderr).toContain('The VirtualService "bad-weight" is invalid');
    expect(r1.stderr).toContain('spec.http[1].route[0].weight');
    expect(r1.stderr).toContain('must be of type integer');

    const httpObject = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bad-http
  namespace: bookinfo
spec:
  hosts: [reviews]
  http:
    route:
    - destination:
        host: reviews
`;
    const r2 = await kube.kubectl(['apply', '-f', '-'], { input: httpObject });
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).toContain('spec.http');
    expect(r2.stderr).toContain('must be of type array');
    expect((await kube.kubectl(['get', 'vs', 'bad-weight', 'bad-http', '-n', 'bookinfo'])).stderr).toContain(
      'NotFound',
    );
  });

  it('applies server-side and deploys a Deployment with strategic merge patches', async () => {
    const deployment = (image: string) => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: reviews-v2
  namespace: bookinfo
  labels: { app: reviews, version: v2 }
spec:
  replicas: 1
  selector:
    matchLabels: { app: reviews, version: v2 }
  template:
    metadata:
      labels: { app: reviews, version: v2 }
    spec:
      containers:
      - name: reviews
        image: ${image}
        ports:
        - containerPort: 9080
`;
    expect(
      await ok(['apply', '-f', '-'], deployment('docker.io/istio/examples-bookinfo-reviews-v2:1.20.2')),
    ).toContain('deployment.apps/reviews-v2 created');
    kube.sim.clearWriteLog();
    await ok(['apply', '-f', '-'], deployment('docker.io/istio/examples-bookinfo-reviews-v2:1.20.3'));
    expect(kube.sim.writeLog()[0]?.patchType).toBe('application/strategic-merge-patch+json');
    const d = kube.sim.getObject('apps/v1', 'Deployment', 'bookinfo', 'reviews-v2');
    expect(d.spec.template.spec.containers).toEqual([
      {
        name: 'reviews',
        image: 'docker.io/istio/examples-bookinfo-reviews-v2:1.20.3',
        ports: [{ containerPort: 9080 }],
      },
    ]);

    const ssa = REVIEWS_VS_V1ALPHA3.replace('name: reviews', 'name: ratings').replaceAll(
      'reviews',
      'ratings',
    );
    expect(await ok(['apply', '--server-side', '-f', '-'], ssa)).toContain(
      'virtualservice.networking.istio.io/ratings serverside-applied',
    );
    expect(
      await ok(
        ['apply', '--server-side', '-f', '-'],
        ssa.replace('weight: 75', 'weight: 70').replace('weight: 25', 'weight: 30'),
      ),
    ).toContain('serverside-applied');
    expect(
      kube.sim.getObject('networking.istio.io/v1', 'VirtualService', 'bookinfo', 'ratings').spec.http[1]
        .route[0].weight,
    ).toBe(70);
  });

  it('sees a change through `kubectl get --watch`', async () => {
    const watch = kube.kubectlStream([
      'get',
      'vs',
      '-n',
      'bookinfo',
      '--watch',
      '-o',
      'custom-columns=NAME:.metadata.name,GW:.spec.gateways',
    ]);
    await eventually(async () => (watch.output().includes('reviews') ? true : undefined), 15_000);
    await ok([
      'patch',
      'vs',
      'reviews',
      '-n',
      'bookinfo',
      '--type=merge',
      '-p',
      '{"spec":{"gateways":["bookinfo-gateway"]}}',
    ]);
    await eventually(async () => (watch.output().includes('[bookinfo-gateway]') ? true : undefined), 15_000);
    await watch.stop();
  });

  it('deletes', async () => {
    expect(await ok(['delete', 'vs', 'reviews', '-n', 'bookinfo'])).toContain(
      'virtualservice.networking.istio.io "reviews" deleted',
    );
    expect(
      kube.sim.getObject('networking.istio.io/v1', 'VirtualService', 'bookinfo', 'reviews'),
    ).toBeUndefined();
    const again = await kube.kubectl(['delete', 'vs', 'reviews', '-n', 'bookinfo']);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('virtualservices.networking.istio.io "reviews" not found');
  });
});
