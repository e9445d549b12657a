import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKubeTrafficRouter, type KubeTrafficRouter } from '../../src/mesh/kube-router.ts';
import { type KubeSimulator, startKubeSimulator } from '../../src/sandbox/kube/index.ts';
import { eventually } from '../helpers/services.ts';
import { loadFixture, reviewsTarget } from './fixtures.ts';

/**
 * Drift is read from a watch: after the first read, the managed objects come from an informer, not a
 * GET per check; an edit by someone else is seen; writes still read the object afresh.
 */
const bookinfo = loadFixture('bookinfo.yaml');
const V1 = 'networking.istio.io/v1';
const target = reviewsTarget();

let sim: KubeSimulator;
const gets: string[] = [];
let watched: KubeTrafficRouter;
let unwatched: KubeTrafficRouter;

beforeAll(async () => {
  sim = await startKubeSimulator({ log: () => {} });
  for (const o of [bookinfo.vs('reviews'), bookinfo.dr('reviews')]) sim.putObject(o);
  const onResult = (method: string) => {
    gets.push(method);
  };
  watched = createKubeTrafficRouter({ kubeConfig: sim.kubeConfig(), timeoutMs: 5_000, onResult });
  unwatched = createKubeTrafficRouter({
    kubeConfig: sim.kubeConfig(),
    timeoutMs: 5_000,
    onResult,
    watch: false,
  });
});
afterAll(async () => {
  await watched?.close();
  await unwatched?.close();
  await sim?.close();
});

async function readsOf(router: KubeTrafficRouter, n: number): Promise<number> {
  const before = gets.filter((m) => m === 'GET').length;
  for (let i = 0; i < n; i++) await router.readWeights(target);
  return gets.filter((m) => m === 'GET').length - before;
}

describe('drift from a watch', () => {
  it('reads the VirtualService and DestinationRule from the watch once it is current', async () => {
    await watched.setWeights(target, { stable: 90, canary: 10 });
    // the informers list and connect; then every drift check is served from them
    await eventually(async () => ((await readsOf(watched, 5)) === 0 ? true : undefined), 10_000, 50);
    expect(await readsOf(watched, 50)).toBe(0);
    expect(await watched.readWeights(target)).toMatchObject({ stable: 90, canary: 10 });
    // without the watch, each check is a GET of each object
    expect(await readsOf(unwatched, 10)).toBeGreaterThanOrEqual(10);
  });

  it("sees someone else's edit as soon as the watch delivers it, and its own writes at once", async () => {
    const vs = sim.getObject(V1, 'VirtualService', 'bookinfo', 'reviews');
    vs.spec.http[1].route[0].weight = 70;
    vs.spec.http[1].route[1].weight = 30;
    sim.putObject(vs);
    await eventually(
      async () => ((await watched.readWeights(target)).canary === 30 ? true : undefined),
      5_000,
      10,
    );
    await watched.setWeights(target, { stable: 50, canary: 50 });
    expect(await watched.readWeights(target)).toMatchObject({ stable: 50, canary: 50 });
    // and back to no GETs once the watch has caught up
    await eventually(async () => ((await readsOf(watched, 3)) === 0 ? true : undefined), 10_000, 50);
  });

  it('writes still read the object first and use its resourceVersion', async () => {
    const before = gets.filter((m) => m === 'GET').length;
    const r = await watched.setWeights(target, { stable: 80, canary: 20 });
    expect(r.changed).toBe(true);
    expect(gets.filter((m) => m === 'GET').length - before).toBeGreaterThanOrEqual(1);
    expect(r.resourceVersion).toBe(
      sim.getObject(V1, 'VirtualService', 'bookinfo', 'reviews').metadata.resourceVersion,
    );
  });
});
