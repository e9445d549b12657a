import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DestinationRuleObject, VirtualServiceObject } from '../../src/mesh/istio.ts';
import {
  createKubeClients,
  createKubeTrafficRouter,
  type KubeTrafficRouter,
} from '../../src/mesh/kube-router.ts';
import { analyzeLive, createPreflight } from '../../src/mesh/live-analyzer.ts';
import { detectDrift } from '../../src/mesh/transforms/index.ts';
import { MeshError, type MeshTarget } from '../../src/mesh/types.ts';
import type { Logger } from '../../src/observability/logger.ts';
import { type KubeSimulator, startKubeSimulator } from '../../src/sandbox/kube/index.ts';
import { loadFixture, reviewsTarget } from './fixtures.ts';

const bookinfo = loadFixture('bookinfo.yaml');
const target: MeshTarget = reviewsTarget();
const V1 = 'networking.istio.io/v1';

describe('the kube adapter against the kube simulator', () => {
  let sim: KubeSimulator;
  let router: KubeTrafficRouter;

  const vs = (): VirtualServiceObject => sim.getObject(V1, 'VirtualService', 'bookinfo', 'reviews');
  const dr = (): DestinationRuleObject => sim.getObject(V1, 'DestinationRule', 'bookinfo', 'reviews');
  const writes = (): { verb: string; resource: string; name: string }[] => sim.writeLog();

  beforeAll(async () => {
    sim = await startKubeSimulator({ log: () => {} });
    router = createKubeTrafficRouter({ kubeConfig: sim.kubeConfig(), backoffMs: 5, timeoutMs: 5_000 });
  });
  afterAll(async () => {
    await sim?.close();
  });
  beforeEach(() => {
    sim.clearFaults();
    for (const o of [bookinfo.vs('reviews'), bookinfo.dr('reviews'), bookinfo.vs('ratings')])
      sim.putObject(o);
    sim.clearWriteLog();
  });

  it('finds networking.istio.io/v1', async () => {
    expect(await router.apiVersion()).toBe('networking.istio.io/v1');
  });

  it('one weight change is one write; the same weights again write nothing', async () => {
    const r = await router.setWeights(target, { stable: 90, canary: 10 });
    expect(r.changed).toBe(true);
    expect(r.resourceVersion).toBe(vs().metadata!.resourceVersion);
    expect(vs().spec!.http![1]!.route).toEqual([
      { destination: { host: 'reviews', subset: 'v1' }, weight: 90 },
      { destination: { host: 'reviews', subset: 'v3' }, weight: 10 },
    ]);
    expect(vs().spec!.http![0]).toEqual(bookinfo.vs('reviews').spec!.http![0]);
    expect(await router.setWeights(target, { stable: 90, canary: 10 })).toEqual({
      changed: false,
      resourceVersion: r.resourceVersion,
    });
    expect(writes().map((w) => [w.verb, w.resource, w.name])).toEqual([
      ['update', 'virtualservices', 'reviews'],
    ]);
    const read = await router.readWeights(target);
    expect(read).toEqual({
      stable: 90,
      canary: 10,
      routes: [{ route: 'default', weights: { stable: 90, canary: 10 } }],
    });
  });

  it('re-reads and re-applies on 409 Conflict, bounded', async () => {
    sim.setFaults([{ verb: 'update', resource: 'virtualservices', status: 409, count: 2 }]);
    expect((await router.setWeights(target, { stable: 75, canary: 25 })).changed).toBe(true);
    expect(vs().spec!.http![1]!.route!.map((d) => d.weight)).toEqual([75, 25]);
    expect(writes()).toHaveLength(1);

    sim.setFaults([{ verb: 'update', resource: 'virtualservices', status: 409 }]);
    const err = await router.setWeights(target, { stable: 50, canary: 50 }).catch((e) => e);
    expect(err).toBeInstanceOf(MeshError);
    expect(err).toMatchObject({ code: 'Conflict', retryable: true });
    expect(err.message).toBe(
      'VirtualService bookinfo/reviews kept changing while vane wrote it (5 conflicts in a row); the next tick tries again',
    );
  });

  it('a real concurrent edit between read and write is not lost', async () => {
    // Someone changes an unmanaged field after vane's first read: vane's PUT carries the old
    // resourceVersion, gets 409, reads again and keeps their change.
    const conflicts: unknown[] = [];
    const logger = { debug: (o: unknown) => conflicts.push(o), warn: () => {} } as unknown as Logger;
    const racing = createKubeTrafficRouter({ kubeConfig: sim.kubeConfig(), backoffMs: 5, logger });
    // warmed up (API discovery done), and the write slow, so the edit lands between read and write
    // even on a loaded machine
    await racing.readWeights(target);
    sim.setFaults([{ verb: 'update', resource: 'virtualservices', latencyMs: 1_500, count: 1 }]);
    const write = racing.setWeights(target, { stable: 60, canary: 40 });
    await new Promise((r) => setTimeout(r, 700));
    const o = vs();
    o.spec!.http![0]!.timeout = '3s';
    sim.putObject(o);
    await write;
    expect(conflicts).toEqual([{ what: 'VirtualService bookinfo/reviews', attempt: 1 }]);
    expect(writes()).toHaveLength(1);
    expect(vs().spec!.http![0]!.timeout).toBe('3s');
    expect(vs().spec!.http![1]!.route!.map((d) => d.weight)).toEqual([60, 40]);
  });

  it('retries 500 and 429 (after Retry-After), and gives up on lasting 500s as Unavailable', async () => {
    sim.setFaults([
      { verb: 'get', resource: 'virtualservices', status: 500, count: 2 },
      { verb: 'update', resource: 'virtualservices', status: 429, count: 1, retryAfterSeconds: 1 },
    ]);
    const started = Date.now();
    expect((await router.setWeights(target, { stable: 80, canary: 20 })).changed).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);

    sim.setFaults([{ verb: 'get', resource: 'virtualservices', status: 500 }]);
    const err = await router.readWeights(target).catch((e) => e);
    expect(err).toMatchObject({ code: 'Unavailable', retryable: true });
    expect(err.message).toMatch(/^VirtualService bookinfo\/reviews: API server error 500/);
  });

  it('a missing object is NotFound and not retryable, naming it', async () => {
    const err = await router.readWeights({ ...target, virtualService: 'nope' }).catch((e) => e);
    expect(err).toMatchObject({
      code: 'NotFound',
      retryable: false,
      message: 'VirtualService bookinfo/nope does not exist',
    });
  });

  it('snapshot records the owner and the original specs; another rollout is refused; release removes them', async () => {
    await router.snapshot(target, 'ro-1');
    await router.snapshot(target, 'ro-1');
    expect(vs().metadata!.annotations).toEqual({
      'vane.dev/rollout': 'ro-1',
      'vane.dev/original-spec': JSON.stringify(bookinfo.vs('reviews').spec),
      // the split as it was, so a first setWeights to the same split writes nothing
      'vane.dev/weights': JSON.stringify({ stable: 100, canary: 0 }),
    });
    expect(dr().metadata!.annotations!['vane.dev/rollout']).toBe('ro-1');
    expect(writes()).toHaveLength(2);
    const err = await router.snapshot(target, 'ro-2').catch((e) => e);
    expect(err).toMatchObject({ code: 'Conflict', retryable: false });
    expect(err.message).toContain('VirtualService bookinfo/reviews is held by rollout ro-1');

    await router.setWeights(target, { stable: 50, canary: 50 });
    await router.restore(target);
    expect(vs().spec).toEqual(bookinfo.vs('reviews').spec);
    await router.release(target);
    expect(vs().metadata!.annotations).toBeUndefined();
    expect(dr().metadata!.annotations).toBeUndefined();
  });

  it('ensureCanarySubset creates the subset once and keeps saying vane created it', async () => {
    const t = { ...target, canarySubset: 'v4', canaryLabels: { version: 'v4' } };
    expect(await router.ensureCanarySubset(t)).toMatchObject({ changed: true, created: true });
    expect(await router.ensureCanarySubset(t)).toMatchObject({ changed: false, created: true });
    expect(dr().spec!.subsets!.at(-1)).toEqual({ name: 'v4', labels: { version: 'v4' } });
    expect(await router.ensureCanarySubset(target)).toMatchObject({ changed: false, created: false });
  });

  it('A/B route and mirror come and go; rollback removes them, then the subset vane created (VS before DR)', async () => {
    const t = { ...target, canarySubset: 'v4', canaryLabels: { version: 'v4' } };
    await router.snapshot(t, 'ro-1');
    await router.ensureCanarySubset(t);
    await router.setExperiment(t, {
      routeName: 'vane-v4',
      match: [{ headers: { 'x-canary': { exact: 'yes' } } }],
    });
    await router.setMirror(t, { percent: 20 });
    await router.setWeights(t, { stable: 70, canary: 30 });
    expect(vs().spec!.http!.map((r) => r.name)).toEqual(['vane-v4', 'jason', 'default']);
    expect(vs().spec!.http![2]!.mirror).toEqual({ host: 'reviews', subset: 'v4' });
    expect(vs().metadata!.annotations!['vane.dev/experiment-route']).toBe('vane-v4');
    sim.clearWriteLog();
    await router.rollback(t, { removeCanarySubset: true });
    expect(writes().map((w) => w.resource)).toEqual(['virtualservices', 'destinationrules']);
    // back to the original exactly (a sole destination without a weight stays so)
    expect(JSON.stringify(vs().spec)).toBe(JSON.stringify(bookinfo.vs('reviews').spec));
    expect(dr().spec).toEqual(bookinfo.dr('reviews').spec);
    await router.rollback(t, { removeCanarySubset: true });
    expect(writes()).toHaveLength(2);
  });

  it('rollback after a relabel that failed half-way puts back the snapshot, keeping what someone else changed meanwhile', async () => {
    // the canary subset v2 exists already, with other labels
    const t = { ...target, canarySubset: 'v2', canaryLabels: { version: 'v2-new' } };
    await router.snapshot(t, 'ro-9');
    await router.ensureCanarySubset(t);
    await router.setWeights(t, { stable: 50, canary: 50 });
    sim.setFaults([{ verb: 'update', resource: 'virtualservices', status: 500 }]);
    await expect(router.promote(t, 'relabel')).rejects.toMatchObject({ code: 'Unavailable' });
    sim.clearFaults();
    expect(dr().spec!.subsets!.slice(0, 2)).toEqual([
      { name: 'v1', labels: { version: 'v2-new' } },
      { name: 'v2', labels: { version: 'v2-new' } },
    ]);
    // meanwhile someone else changes subset v3 and the unmanaged route
    const d = dr();
    d.spec!.subsets![2]!.trafficPolicy = { loadBalancer: { simple: 'LEAST_REQUEST' } };
    sim.putObject(d);
    const v = vs();
    v.spec!.http![0]!.timeout = '5s';
    sim.putObject(v);
    sim.clearWriteLog();
    await router.rollback(t, { removeCanarySubset: false, rolloutId: 'ro-9' });
    expect(writes().map((w) => w.resource)).toEqual(['virtualservices', 'destinationrules']);
    const wantDr = bookinfo.dr('reviews').spec!;
    wantDr.subsets![2]!.trafficPolicy = { loadBalancer: { simple: 'LEAST_REQUEST' } };
    expect(JSON.stringify(dr().spec)).toBe(JSON.stringify(wantDr));
    const wantVs = bookinfo.vs('reviews').spec!;
    wantVs.http![0]!.timeout = '5s';
    expect(JSON.stringify(vs().spec)).toBe(JSON.stringify(wantVs));
    expect(vs().metadata!.annotations).toBeUndefined();
    expect(dr().metadata!.annotations).toBeUndefined();
    // again: the objects are no longer held by the rollout, nothing is written
    await router.rollback(t, { removeCanarySubset: true, rolloutId: 'ro-9' });
    expect(writes()).toHaveLength(2);
  });

  it('a write whose fence throws is not made', async () => {
    const fenced = { ...target, fence: async () => Promise.reject(new Error('lease lost')) };
    await expect(router.setWeights(fenced, { stable: 80, canary: 20 })).rejects.toThrow('lease lost');
    expect(writes()).toEqual([]);
    let checks = 0;
    const counted = { ...target, fence: async () => void checks++ };
    await router.setWeights(counted, { stable: 80, canary: 20 });
    await router.setWeights(counted, { stable: 80, canary: 20 });
    expect(checks).toBe(1); // checked before the one write; no write, no check
  });

  it('promotion by relabel changes the DestinationRule before the VirtualService', async () => {
    await router.setWeights(target, { stable: 50, canary: 50 });
    sim.clearWriteLog();
    await router.promote(target, 'relabel');
    expect(writes().map((w) => w.resource)).toEqual(['destinationrules', 'virtualservices']);
    expect(dr().spec!.subsets![0]).toEqual({ name: 'v1', labels: { version: 'v3' } });
    expect(vs().spec!.http![1]!.route).toEqual([
      { destination: { host: 'reviews', subset: 'v1' }, weight: 100 },
    ]);
  });

  it('promotion by shift sends everything to the canary subset', async () => {
    await router.setWeights(target, { stable: 50, canary: 50 });
    await router.promote(target, 'shift');
    expect(vs().spec!.http![1]!.route).toEqual([
      { destination: { host: 'reviews', subset: 'v3' }, weight: 100 },
    ]);
    await router.promote(target, 'shift');
  });

  it('drift: a hand edit of the weights shows in readWeights and detectDrift', async () => {
    await router.setWeights(target, { stable: 90, canary: 10 });
    const o = vs();
    o.spec!.http![1]!.route![0]!.weight = 50;
    o.spec!.http![1]!.route![1]!.weight = 50;
    sim.putObject(o);
    const actual = await router.readWeights(target);
    expect(actual).toMatchObject({ stable: 50, canary: 50 });
    expect(detectDrift({ stable: 90, canary: 10 }, actual).drifted).toBe(true);
  });

  it('works on objects stored at v1alpha3 and v1beta1', async () => {
    const old = bookinfo.vs('reviews');
    sim.putObject({ ...old, apiVersion: 'networking.istio.io/v1alpha3' });
    expect((await router.setWeights(target, { stable: 95, canary: 5 })).changed).toBe(true);
    expect(
      sim.getObject('networking.istio.io/v1beta1', 'VirtualService', 'bookinfo', 'reviews').spec.http[1]
        .route[1],
    ).toEqual({
      destination: { host: 'reviews', subset: 'v3' },
      weight: 5,
    });
  });

  it('reads workload readiness and pods, and analyzes live objects', async () => {
    sim.putObject({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'reviews-v3', namespace: 'bookinfo' },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'reviews', version: 'v3' } },
        template: {
          metadata: { labels: { app: 'reviews', version: 'v3' } },
          spec: { containers: [{ name: 'reviews', image: 'reviews:v3' }] },
        },
      },
    });
    const clients = createKubeClients({ kubeConfig: sim.kubeConfig(), backoffMs: 5 });
    const deployment = sim.getObject('apps/v1', 'Deployment', 'bookinfo', 'reviews-v3');
    sim.setDeploymentStatus('bookinfo', 'reviews-v3', {
      observedGeneration: deployment.metadata.generation,
      replicas: 2,
      readyReplicas: 1,
      updatedReplicas: 2,
      availableReplicas: 1,
    });
    expect(await clients.readWorkload('bookinfo', 'Deployment', 'reviews-v3')).toEqual({
      ready: false,
      desired: 2,
      readyReplicas: 1,
      updated: 2,
      available: 1,
      message: '1/2 ready, 2/2 updated, 1/2 available',
    });
    sim.setDeploymentStatus('bookinfo', 'reviews-v3', {
      observedGeneration: deployment.metadata.generation,
      replicas: 2,
      readyReplicas: 2,
      updatedReplicas: 2,
      availableReplicas: 2,
    });
    expect((await clients.readWorkload('bookinfo', 'Deployment', 'reviews-v3')).ready).toBe(true);

    const deps = { router: () => router, clients };
    // no pod with the canary labels yet
    const before = await analyzeLive(deps, target);
    expect(before.findings.map((f) => f.code)).toEqual(['VANE0106']);
    sim.putObject({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'reviews-v3-abc', namespace: 'bookinfo', labels: { app: 'reviews', version: 'v3' } },
      spec: { containers: [{ name: 'reviews', image: 'reviews:v3' }] },
    });
    expect(await clients.listPods('bookinfo', { version: 'v3' })).toEqual([
      { source: 'Pod reviews-v3-abc', labels: { app: 'reviews', version: 'v3' } },
    ]);
    expect((await analyzeLive(deps, target)).findings).toEqual([]);
    const preflight = createPreflight(deps, { isTargetBusy: async () => 'ro-7' });
    expect(await preflight.check(target, 'ro-8')).toEqual([
      { code: 'VANE0107', message: expect.stringContaining('rollout ro-7 is active') },
    ]);
    expect(await preflight.check({ ...target, virtualService: 'gone' }, 'ro-8')).toEqual([
      { code: 'VANE0101', message: expect.stringContaining('VirtualService bookinfo/gone does not exist') },
      { code: 'VANE0107', message: expect.any(String) },
    ]);
  });
});
