// biome-ignore-all lint/suspicious/noExplicitAny: tests read Kubernetes objects as untyped JSON.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointsOf } from '../../../src/sandbox/pods/index.ts';
import { startTestKube, type TestKube } from '../../helpers/kube.ts';
import { eventually } from '../../helpers/services.ts';

/** One microservice of a bookinfo-like app: the kinds and fields Istio's sample manifests use. */
function service(name: string, versions: string[], opts: { volume?: boolean } = {}): string {
  const svc = `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  labels:
    app: ${name}
    service: ${name}
spec:
  ports:
  - port: 9080
    name: http
  selector:
    app: ${name}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: shop-${name}
  labels:
    account: ${name}
`;
  const deployments = versions.map(
    (v) => `---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}-${v}
  labels:
    app: ${name}
    version: ${v}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: ${name}
      version: ${v}
  template:
    metadata:
      labels:
        app: ${name}
        version: ${v}
    spec:
      serviceAccountName: shop-${name}
      containers:
      - name: ${name}
        image: registry.example.com/shop/${name}-${v}:2.1.0
        imagePullPolicy: IfNotPresent
        env:
        - name: LOG_DIR
          value: "/tmp/logs"
        - name: FEATURE_STARS
          value: "${v === 'v1' ? 'false' : 'true'}"
        ports:
        - containerPort: 9080
${
  opts.volume
    ? `        volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: cache
          mountPath: /opt/cache
`
    : ''
}        securityContext:
          runAsUser: 1000
${
  opts.volume
    ? `      volumes:
      - name: tmp
        emptyDir: {}
      - name: cache
        emptyDir:
          sizeLimit: 64Mi
`
    : ''
}`,
  );
  return [svc, ...deployments].join('');
}

const MANIFEST = [
  service('catalog', ['v1']),
  service('stars', ['v1']),
  service('reviews', ['v1', 'v2', 'v3'], { volume: true }),
  service('storefront', ['v1'], { volume: true }),
].join('---\n');

describe('a bookinfo-like manifest applies unchanged and runs', () => {
  let k: TestKube;
  beforeAll(async () => {
    k = await startTestKube({ pods: true });
    const ns = await k.kubectl(['apply', '-f', '-'], {
      input: 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n',
    });
    expect(ns.code).toBe(0);
  });
  afterAll(async () => {
    await k?.stop();
  });

  it('kubectl apply creates Services, ServiceAccounts and Deployments with volumes, env and securityContext', async () => {
    const r = await k.kubectl(['apply', '-n', 'shop', '-f', '-'], { input: MANIFEST });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('serviceaccount/shop-reviews created');
    expect(r.stdout).toContain('deployment.apps/reviews-v3 created');
    // Applying again changes nothing, as on a cluster.
    const again = await k.kubectl(['apply', '-n', 'shop', '-f', '-'], { input: MANIFEST });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('serviceaccount/shop-reviews unchanged');
    expect(again.stdout).toContain('deployment.apps/reviews-v3 unchanged');

    const wait = await k.kubectl(
      ['wait', '-n', 'shop', '--for=condition=Available', 'deployment', '--all', '--timeout=30s'],
      { timeoutMs: 40_000 },
    );
    expect(wait.stderr).toBe('');
    expect(wait.stdout.trim().split('\n')).toHaveLength(6);

    const sa = await k.kubectl(['get', 'sa', '-n', 'shop', 'shop-reviews', '-o', 'json']);
    expect(JSON.parse(sa.stdout).metadata.labels).toEqual({ account: 'reviews' });
    const d = k.sim.getObject('apps/v1', 'Deployment', 'shop', 'reviews-v2');
    const c = d.spec.template.spec.containers[0];
    expect(c.env).toContainEqual({ name: 'FEATURE_STARS', value: 'true' });
    expect(c.securityContext).toEqual({ runAsUser: 1000 });
    expect(d.spec.template.spec.volumes).toContainEqual({ name: 'cache', emptyDir: { sizeLimit: '64Mi' } });
    // The pods carry the template's spec, as a ReplicaSet's pods do.
    const pod = k.sim.listObjects('v1', 'Pod', 'shop').find((p) => p.metadata.labels.version === 'v2');
    expect(pod.spec.serviceAccountName).toBe('shop-reviews');
    expect(pod.spec.containers[0].imagePullPolicy).toBe('IfNotPresent');
  });

  it("the reviews Service's endpoints are the three versions' pods, each answering for itself", async () => {
    const eps = await eventually(async () => {
      const e = endpointsOf(k.sim, 'shop', 'reviews');
      return e?.length === 3 ? e : undefined;
    });
    expect(eps.map((e) => e.labels.version).sort()).toEqual(['v1', 'v2', 'v3']);
    for (const e of eps) {
      const res = await fetch(`http://${e.ip}:${e.port}/reviews/0`, { signal: AbortSignal.timeout(5_000) });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-sandbox-pod')).toBe(e.pod);
      const body: any = await res.json();
      expect(body).toMatchObject({ pod: e.pod, namespace: 'shop', path: '/reviews/0' });
      expect(body.labels.app).toBe('reviews');
    }
    expect(endpointsOf(k.sim, 'shop', 'catalog')).toHaveLength(1);
    expect(k.sim.pods!.running()).toHaveLength(6);
  });

  it('kubectl delete -f removes it all and stops every pod', async () => {
    const r = await k.kubectl(['delete', '-n', 'shop', '-f', '-'], { input: MANIFEST });
    expect(r.code).toBe(0);
    await eventually(async () => (k.sim.pods!.running().length === 0 ? true : undefined), 10_000);
    expect(k.sim.listObjects('v1', 'Pod', 'shop')).toEqual([]);
    expect(k.sim.listObjects('apps/v1', 'ReplicaSet', 'shop')).toEqual([]);
  });
});
