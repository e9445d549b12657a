// biome-ignore-all lint/suspicious/noExplicitAny: tests read Kubernetes objects as untyped JSON.
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubernetesObject,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KubeSimulator, startKubeSimulator } from '../../../src/sandbox/kube/index.ts';
import { istioCrdsFile } from '../../helpers/kube.ts';
import { eventually } from '../../helpers/services.ts';

const VS = { group: 'networking.istio.io', version: 'v1', namespace: 'bookinfo', plural: 'virtualservices' };

function reviews(name = 'reviews', weights = [90, 10]) {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name, namespace: 'bookinfo' },
    spec: {
      hosts: ['reviews'],
      http: [
        {
          name: 'jason',
          match: [{ headers: { 'end-user': { exact: 'jason' } } }],
          route: [{ destination: { host: 'reviews', subset: 'v2' } }],
        },
        {
          name: 'default',
          route: [
            { destination: { host: 'reviews', subset: 'v1' }, weight: weights[0] },
            { destination: { host: 'reviews', subset: 'v2' }, weight: weights[1] },
          ],
        },
      ],
    },
  };
}

/** The Status body of a failed call, whatever form client-node hands it over in. */
function statusOf(e: unknown): any {
  expect(e).toBeInstanceOf(ApiException);
  const body = (e as ApiException<unknown>).body;
  return typeof body === 'string' ? JSON.parse(body) : body;
}

async function failure(
  p: Promise<unknown>,
): Promise<{ code: number; status: any; headers: Record<string, string> }> {
  try {
    await p;
  } catch (e) {
    return {
      code: (e as ApiException<unknown>).code,
      status: statusOf(e),
      headers: (e as ApiException<unknown>).headers,
    };
  }
  throw new Error('expected the call to fail');
}

describe('@kubernetes/client-node against the kube simulator', () => {
  let sim: KubeSimulator;
  let custom: CustomObjectsApi;
  beforeAll(async () => {
    sim = await startKubeSimulator({ crdsFile: istioCrdsFile(), log: () => {} });
    const kc = sim.kubeConfig();
    custom = kc.makeApiClient(CustomObjectsApi);
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'bookinfo' } } });
  });
  afterAll(async () => {
    await sim?.close();
  });

  it('creates, gets, merge-patches and replaces a VirtualService through CustomObjectsApi', async () => {
    const created: any = await custom.createNamespacedCustomObject({ ...VS, body: reviews() });
    expect(created.metadata).toMatchObject({ name: 'reviews', namespace: 'bookinfo', generation: 1 });
    const got: any = await custom.getNamespacedCustomObject({ ...VS, name: 'reviews' });
    expect(got.spec).toEqual(reviews().spec);

    const patched: any = await custom.patchNamespacedCustomObject(
      {
        ...VS,
        name: 'reviews',
        body: { spec: { http: [reviews().spec.http[0], reviews('x', [50, 50]).spec.http[1]] } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect(patched.spec.http[1].route.map((r: any) => r.weight)).toEqual([50, 50]);
    expect(patched.metadata.generation).toBe(2);
    expect(Number(patched.metadata.resourceVersion)).toBeGreaterThan(Number(got.metadata.resourceVersion));

    const jsonPatched: any = await custom.patchNamespacedCustomObject(
      {
        ...VS,
        name: 'reviews',
        body: [
          { op: 'test', path: '/spec/http/1/route/0/weight', value: 50 },
          { op: 'replace', path: '/spec/http/1/route/0/weight', value: 80 },
          { op: 'replace', path: '/spec/http/1/route/1/weight', value: 20 },
        ],
      },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );
    expect(jsonPatched.spec.http[1].route.map((r: any) => r.weight)).toEqual([80, 20]);

    const replaced: any = await custom.replaceNamespacedCustomObject({
      ...VS,
      name: 'reviews',
      body: { ...jsonPatched, metadata: { ...jsonPatched.metadata, labels: { team: 'reviews' } } },
    });
    expect(replaced.metadata.labels).toEqual({ team: 'reviews' });
    // A metadata-only change is not a spec change.
    expect(replaced.metadata.generation).toBe(jsonPatched.metadata.generation);
  });

  it('shows one stored object at v1, v1beta1 and v1alpha3', async () => {
    for (const version of ['v1beta1', 'v1alpha3']) {
      const o: any = await custom.getNamespacedCustomObject({ ...VS, version, name: 'reviews' });
      expect(o.apiVersion).toBe(`networking.istio.io/${version}`);
      expect(o.spec.hosts).toEqual(['reviews']);
    }
  });

  it('refuses a stale resourceVersion with a 409 Status shaped like the real one', async () => {
    const current: any = await custom.getNamespacedCustomObject({ ...VS, name: 'reviews' });
    await custom.patchNamespacedCustomObject(
      { ...VS, name: 'reviews', body: { metadata: { annotations: { touched: 'yes' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const { code, status } = await failure(
      custom.replaceNamespacedCustomObject({ ...VS, name: 'reviews', body: current }),
    );
    expect(code).toBe(409);
    expect(status).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message:
        'Operation cannot be fulfilled on virtualservices.networking.istio.io "reviews": the object has been modified; please apply your changes to the latest version and try again',
      reason: 'Conflict',
      details: { name: 'reviews', group: 'networking.istio.io', kind: 'virtualservices' },
      code: 409,
    });
    // A merge patch carrying the stale resourceVersion is a precondition that fails the same way.
    const patch = await failure(
      custom.patchNamespacedCustomObject(
        {
          ...VS,
          name: 'reviews',
          body: {
            metadata: { resourceVersion: current.metadata.resourceVersion },
            spec: { gateways: ['mesh'] },
          },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
    expect(patch.status.reason).toBe('Conflict');
  });

  it('loses no update when two read-modify-write loops race', async () => {
    await custom.createNamespacedCustomObject({
      ...VS,
      body: {
        ...reviews('counter'),
        metadata: { name: 'counter', namespace: 'bookinfo', annotations: { count: '0' } },
      },
    });
    let conflicts = 0;
    const loop = async (n: number) => {
      for (let i = 0; i < n; ) {
        const o: any = await custom.getNamespacedCustomObject({ ...VS, name: 'counter' });
        o.metadata.annotations.count = String(Number(o.metadata.annotations.count) + 1);
        try {
          await custom.replaceNamespacedCustomObject({ ...VS, name: 'counter', body: o });
          i++;
        } catch (e) {
          if ((e as ApiException<unknown>).code !== 409) throw e;
          conflicts++;
        }
      }
    };
    await Promise.all([loop(25), loop(25)]);
    const final: any = await custom.getNamespacedCustomObject({ ...VS, name: 'counter' });
    expect(final.metadata.annotations.count).toBe('50');
    expect(conflicts).toBeGreaterThan(0);
  });

  it('refuses an invalid VirtualService with 422 and one cause per field', async () => {
    const bad = reviews('bad');
    (bad.spec.http[1]!.route![0] as any).weight = 'fifty';
    const one = await failure(custom.createNamespacedCustomObject({ ...VS, body: bad }));
    expect(one.code).toBe(422);
    expect(one.status.reason).toBe('Invalid');
    expect(one.status.message).toContain(
      'VirtualService.networking.istio.io "bad" is invalid: spec.http[1].route[0].weight',
    );
    expect(one.status.details).toMatchObject({
      name: 'bad',
      group: 'networking.istio.io',
      kind: 'VirtualService',
    });
    expect(one.status.details.causes).toEqual([
      {
        reason: 'FieldValueTypeInvalid',
        field: 'spec.http[1].route[0].weight',
        message:
          'Invalid value: "string": spec.http[1].route[0].weight in body must be of type integer: "string"',
      },
    ]);

    const two = await failure(
      custom.createNamespacedCustomObject({
        ...VS,
        body: { ...reviews('bad'), spec: { hosts: ['reviews'], http: { route: [] }, tcp: 'x' } },
      }),
    );
    expect(two.status.details.causes.map((c: any) => c.field).sort()).toEqual(['spec.http', 'spec.tcp']);
    expect(sim.getObject('networking.istio.io/v1', 'VirtualService', 'bookinfo', 'bad')).toBeUndefined();
  });

  it('reads and writes Deployment status through AppsV1Api', async () => {
    const apps = sim.kubeConfig().makeApiClient(AppsV1Api);
    await apps.createNamespacedDeployment({
      namespace: 'bookinfo',
      body: {
        metadata: { name: 'reviews-v2', labels: { app: 'reviews', version: 'v2' } },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: 'reviews', version: 'v2' } },
          template: {
            metadata: { labels: { app: 'reviews', version: 'v2' } },
            spec: { containers: [{ name: 'reviews', image: 'reviews:v2' }] },
          },
        },
      },
    });
    const conditions = [{ type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable' }];
    sim.setDeploymentStatus('bookinfo', 'reviews-v2', {
      replicas: 2,
      readyReplicas: 2,
      updatedReplicas: 2,
      availableReplicas: 2,
      observedGeneration: 1,
      conditions,
    });
    const d = await apps.readNamespacedDeploymentStatus({ namespace: 'bookinfo', name: 'reviews-v2' });
    expect(d.status).toMatchObject({
      replicas: 2,
      readyReplicas: 2,
      availableReplicas: 2,
      conditions: [{ type: 'Available', status: 'True' }],
    });

    // The main resource cannot change status; the status subresource cannot change spec.
    const scaled = await apps.patchNamespacedDeployment(
      {
        namespace: 'bookinfo',
        name: 'reviews-v2',
        body: { spec: { replicas: 3 }, status: { readyReplicas: 0 } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
    expect(scaled.spec?.replicas).toBe(3);
    expect(scaled.status?.readyReplicas).toBe(2);
    expect(scaled.metadata?.generation).toBe(2);
    const viaStatus = await apps.patchNamespacedDeploymentStatus(
      {
        namespace: 'bookinfo',
        name: 'reviews-v2',
        body: { spec: { replicas: 9 }, status: { readyReplicas: 3 } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect(viaStatus.spec?.replicas).toBe(3);
    expect(viaStatus.status?.readyReplicas).toBe(3);
  });

  it('feeds an informer its list, then adds, updates and deletes', async () => {
    const kc = sim.kubeConfig();
    const path = '/apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices';
    const informer = makeInformer<KubernetesObject>(
      kc,
      path,
      () => custom.listNamespacedCustomObject({ ...VS }) as Promise<any>,
    );
    const seen: string[] = [];
    informer.on('add', (o) => seen.push(`add ${o.metadata?.name}`));
    informer.on('update', (o) => seen.push(`update ${o.metadata?.name} ${(o as any).spec.gateways ?? ''}`));
    informer.on('delete', (o) => seen.push(`delete ${o.metadata?.name}`));
    await informer.start();
    try {
      await eventually(
        async () => (seen.includes('add reviews') && seen.includes('add counter') ? true : undefined),
        10_000,
      );
      await custom.createNamespacedCustomObject({ ...VS, body: reviews('details') });
      await custom.patchNamespacedCustomObject(
        { ...VS, name: 'details', body: { spec: { gateways: ['mesh'] } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      await custom.deleteNamespacedCustomObject({ ...VS, name: 'details' });
      await eventually(async () => (seen.includes('delete details') ? true : undefined), 10_000);
      expect(seen.filter((s) => s.includes('details'))).toEqual([
        'add details',
        'update details mesh',
        'delete details',
      ]);
      expect(
        informer
          .list('bookinfo')
          .map((o) => o.metadata?.name)
          .sort(),
      ).toEqual(['counter', 'reviews']);
    } finally {
      await informer.stop();
    }
  });
});
