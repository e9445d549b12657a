import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RolloutError } from '../../src/rollouts/errors.ts';
import { getRollout, rolloutEvents, sendCommand, startRollout } from '../../src/rollouts/verbs.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import {
  canarySpec,
  canaryWeightOf,
  type EngineHarness,
  FakeSuccessRate,
  seedTarget,
  startEngineHarness,
  VS,
} from '../helpers/engine.ts';
import { eventually, startTestRedis } from '../helpers/services.ts';

let redis: ManagedProcess;
let h: EngineHarness;
const provider = new FakeSuccessRate();

beforeAll(async () => {
  redis = await startTestRedis();
  h = await startEngineHarness({ redisUrl: redis.url, provider });
});
afterAll(async () => {
  await h?.close();
  await redis?.stop();
});
beforeEach(() => {
  provider.rates.clear();
  provider.down = false;
  h.sim.clearFaults();
});

const vsOf = (name: string) => h.sim.getObject(VS, 'VirtualService', 'shop', name);
/** The spec with a sole destination's weight spelled out: Istio takes a sole destination as 100%. */
const explicitWeights = (spec: { http: { route: { weight?: number }[] }[] }) => ({
  ...spec,
  http: spec.http.map((h) => ({
    ...h,
    route: h.route.length === 1 ? [{ ...h.route[0], weight: h.route[0]!.weight ?? 100 }] : h.route,
  })),
});
const drOf = (name: string) => h.sim.getObject(VS, 'DestinationRule', 'shop', name);

/** Resolves once the VirtualService's managed route sends `weight`% to the canary. */
const atWeight = (name: string, weight: number) =>
  eventually(async () => (canaryWeightOf(vsOf(name)) === weight ? true : undefined), 20_000, 20);

describe('the rollout engine, on the kube simulator and a real Redis', () => {
  it('drives a 5-step canary to success: one VirtualService write per step, then the promotion', async () => {
    seedTarget(h.sim, 'cart');
    const before = vsOf('cart');
    const drBefore = drOf('cart');
    const { rollout } = await startRollout({ ctx: h.domain.ctx, input: canarySpec('cart') });
    const done = await h.settle(rollout.id);
    expect(done.phase, done.reason).toBe('succeeded');

    // snapshot, the five steps, the promotion, and the release of vane's annotations
    expect(h.weightWrites('cart')).toEqual([undefined, 10, 20, 30, 40, 50, 100, 100]);
    const vs = vsOf('cart');
    expect(vs.spec.http[0]).toEqual(before.spec.http[0]); // the unmanaged route is untouched
    expect(vs.spec.http[1]).toEqual({
      name: 'default',
      retries: { attempts: 2, perTryTimeout: '1s' },
      route: [{ destination: { host: 'cart', subset: 'v2' }, weight: 100 }],
    });
    expect(vs.metadata.annotations ?? {}).toEqual({});
    const dr = drOf('cart');
    expect(dr.spec.trafficPolicy).toEqual(drBefore.spec.trafficPolicy);
    expect(dr.spec.subsets).toEqual([
      { name: 'v1', labels: { app: 'cart', version: 'v1' } },
      { name: 'v2', labels: { app: 'cart', version: 'v2' } },
    ]);

    const events = await rolloutEvents({ ctx: h.domain.ctx, id: rollout.id });
    const story = events
      .filter((e) => e.type === 'transition' || e.type === 'weight')
      .map((e) => (e.type === 'transition' ? `→ ${e.to}` : `${e.weights?.canary}%`));
    expect(story).toEqual([
      '→ initializing',
      '→ progressing',
      '0%',
      '10%',
      '20%',
      '30%',
      '40%',
      '50%',
      '→ promoting',
      '100%',
      '→ succeeded',
    ]);
    // each step was judged before the next
    const analyses = events.filter((e) => e.type === 'analysis' && e.reason.startsWith('analysis'));
    expect(analyses.length).toBe(5);
    expect(analyses.every((e) => e.verdict === 'pass' && e.results?.[0]?.name === 'success-rate')).toBe(true);
    expect(h.domain.ctx.recorder).toBeDefined();
  });

  it('rolls a bad canary back at once: stable 100, no canary destination, the DestinationRule as it was', async () => {
    seedTarget(h.sim, 'pay');
    const before = vsOf('pay');
    const drBefore = drOf('pay');
    const { rollout } = await startRollout({ ctx: h.domain.ctx, input: canarySpec('pay') });
    await atWeight('pay', 30);
    provider.set('pay', 'v2', 91.2);
    const done = await h.settle(rollout.id);
    expect(done.phase).toBe('failed');
    expect(done.reason).toMatch(/success rate 91\.2% < 99%/);
    expect(explicitWeights(vsOf('pay').spec)).toEqual(explicitWeights(before.spec));
    expect(drOf('pay').spec).toEqual(drBefore.spec);
    expect(vsOf('pay').metadata.annotations ?? {}).toEqual({});
    const writes = h.weightWrites('pay');
    expect(writes.slice(0, 4)).toEqual([undefined, 10, 20, 30]);
    expect(writes).not.toContain(40);
    const events = await rolloutEvents({ ctx: h.domain.ctx, id: rollout.id });
    const failed = events.find((e) => e.type === 'analysis' && e.verdict === 'fail');
    expect(failed?.results?.[0]).toMatchObject({ name: 'success-rate', verdict: 'fail', value: 91.2 });
    expect(events.map((e) => e.to).filter(Boolean)).toEqual([
      'pending',
      'initializing',
      'progressing',
      'rolling-back',
      'failed',
    ]);
  });

  it('pauses on drift when someone else edits the managed weights', async () => {
    seedTarget(h.sim, 'search');
    const { rollout } = await startRollout({
      ctx: h.domain.ctx,
      input: canarySpec('search', {
        strategy: { type: 'canary', steps: [10, 20, 30], stepInterval: '2s' },
      }),
    });
    await atWeight('search', 10);
    const vs = vsOf('search');
    vs.spec.http[1].route = [
      { destination: { host: 'search', subset: 'v1' }, weight: 50 },
      { destination: { host: 'search', subset: 'v2' }, weight: 50 },
    ];
    h.sim.putObject(vs);
    const paused = await eventually(async () => {
      const r = await getRollout({ ctx: h.domain.ctx, id: rollout.id });
      return r.phase === 'paused' ? r : undefined;
    });
    expect(paused.reason).toMatch(/^drift: /);
    expect(paused.pause?.kind).toBe('drift');
    // vane does not fight the edit while paused
    await new Promise((r) => setTimeout(r, 600));
    expect(canaryWeightOf(vsOf('search'))).toBe(50);
    // resume reasserts vane's weights, and the rollout goes on to the end
    await sendCommand({ ctx: h.domain.ctx, id: rollout.id, type: 'resume', by: 'alice' });
    const done = await h.settle(rollout.id);
    expect(done.phase).toBe('succeeded');
    expect(h.weightWrites('search')).toContain(30);
  });

  it('an abort restores the objects and ends aborted', async () => {
    seedTarget(h.sim, 'orders');
    const before = vsOf('orders');
    const { rollout } = await startRollout({ ctx: h.domain.ctx, input: canarySpec('orders') });
    await atWeight('orders', 20);
    await sendCommand({ ctx: h.domain.ctx, id: rollout.id, type: 'abort', by: 'bob', reason: 'wrong build' });
    const done = await h.settle(rollout.id);
    expect(done.phase).toBe('aborted');
    expect(explicitWeights(vsOf('orders').spec)).toEqual(explicitWeights(before.spec));
  });

  it('two concurrent starts on one target make one rollout and one TargetBusy; one idempotency key makes one rollout', async () => {
    seedTarget(h.sim, 'stock');
    const [a, b] = await Promise.allSettled([
      startRollout({ ctx: h.domain.ctx, input: canarySpec('stock', { metadata: { commit: 'a' } }) }),
      startRollout({ ctx: h.domain.ctx, input: canarySpec('stock', { metadata: { commit: 'b' } }) }),
    ]);
    const ok = [a, b].filter((x) => x.status === 'fulfilled');
    const busy = [a, b].filter((x) => x.status === 'rejected');
    expect(ok).toHaveLength(1);
    expect(busy).toHaveLength(1);
    const err = (busy[0] as PromiseRejectedResult).reason as RolloutError;
    expect(err).toBeInstanceOf(RolloutError);
    expect(err.code).toBe('TARGET_BUSY');
    const first = (ok[0] as PromiseFulfilledResult<{ rollout: { id: string } }>).value.rollout.id;
    await h.settle(first);

    const spec = canarySpec('stock', { idempotencyKey: 'pipeline-42-deploy' });
    const [x, y] = await Promise.all([
      startRollout({ ctx: h.domain.ctx, input: spec }),
      startRollout({ ctx: h.domain.ctx, input: spec }),
    ]);
    expect(x.rollout.id).toBe(y.rollout.id);
    expect((await h.settle(x.rollout.id)).phase).toBe('succeeded');
  });

  it('with 20% of Kubernetes calls failing and metrics missing mid-step, nothing promotes blind; all complete', async () => {
    const names = ['f1', 'f2', 'f3'];
    for (const n of names) seedTarget(h.sim, n);
    h.sim.setFaults([
      { resource: 'virtualservices', status: 409, rate: 0.1 },
      { resource: 'virtualservices', status: 500, rate: 0.1 },
      { resource: 'destinationrules', status: 500, rate: 0.2 },
    ]);
    const ids: string[] = [];
    // Steps long enough that the first rollout is still on its first step when the last one starts
    // on a loaded machine.
    for (const n of names) {
      const { rollout } = await startRollout({
        ctx: h.domain.ctx,
        input: canarySpec(n, { strategy: { type: 'canary', steps: [20, 40, 60], stepInterval: '5s' } }),
      });
      ids.push(rollout.id);
    }
    await Promise.all(names.map((n) => atWeight(n, 20)));
    provider.down = true;
    // a tick that queried just before may still finish its step, and a step decided then may still
    // be retried through the faults: sample once every decided step is written
    await new Promise((r) => setTimeout(r, 1_000));
    await Promise.all(
      ids.map((id) =>
        eventually(async () => ((await getRollout({ ctx: h.domain.ctx, id })).applied ? true : undefined)),
      ),
    );
    const downAt = Date.now();
    const weightsAtDown = names.map((n) => canaryWeightOf(vsOf(n)));
    await new Promise((r) => setTimeout(r, 4_000));
    for (const [i, n] of names.entries()) {
      const r = await getRollout({ ctx: h.domain.ctx, id: ids[i]! });
      expect(r.phase).toBe('progressing');
      // no step was taken on missing data
      expect(canaryWeightOf(vsOf(n))).toBe(weightsAtDown[i]);
    }
    provider.down = false;
    for (const id of ids) {
      const done = await h.settle(id);
      expect(done.phase).toBe('succeeded');
      expect(done.updatedAt).toBeGreaterThan(downAt + 4_000);
    }
    for (const n of names) {
      // every step once, in order, despite conflicts and server errors
      const weights = h.weightWrites(n).filter((w) => w !== undefined);
      expect(weights).toEqual([20, 40, 60, 100, 100]);
    }
    const events = await rolloutEvents({ ctx: h.domain.ctx, id: ids[0]! });
    expect(events.some((e) => e.type === 'analysis' && e.verdict === 'inconclusive')).toBe(true);
  }, 120_000);

  it('holds at a manual gate until resumed', async () => {
    seedTarget(h.sim, 'gate');
    const { rollout } = await startRollout({
      ctx: h.domain.ctx,
      input: canarySpec('gate', {
        strategy: { type: 'canary', steps: [10, { weight: 20, pause: {} }, 30], stepInterval: '500ms' },
      }),
    });
    const paused = await eventually(async () => {
      const r = await getRollout({ ctx: h.domain.ctx, id: rollout.id });
      return r.phase === 'paused' ? r : undefined;
    });
    expect(paused.pause?.kind).toBe('gate');
    expect(canaryWeightOf(vsOf('gate'))).toBe(20);
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await getRollout({ ctx: h.domain.ctx, id: rollout.id })).phase).toBe('paused');
    await sendCommand({ ctx: h.domain.ctx, id: rollout.id, type: 'resume', by: 'carol' });
    expect((await h.settle(rollout.id)).phase).toBe('succeeded');
  });

  it('rolls back when the canary workload is not ready by its deadline', async () => {
    seedTarget(h.sim, 'slow');
    h.sim.putObject({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'slow-v2', namespace: 'shop' },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'slow', version: 'v2' } },
        template: {
          metadata: { labels: { app: 'slow', version: 'v2' } },
          spec: { containers: [{ name: 'app', image: 'slow:v2' }] },
        },
      },
    });
    h.sim.setDeploymentStatus('shop', 'slow-v2', { replicas: 2, readyReplicas: 1, updatedReplicas: 2 });
    const { rollout } = await startRollout({
      ctx: h.domain.ctx,
      input: canarySpec('slow', {
        canary: {
          subset: 'v2',
          labels: { app: 'slow', version: 'v2' },
          workload: { kind: 'Deployment', name: 'slow-v2' },
        },
        analysis: { guardInterval: '250ms', minRequests: 0, deadlines: { workloadReady: '1500ms' } },
      }),
    });
    const done = await h.settle(rollout.id);
    expect(done.phase).toBe('failed');
    expect(done.reason).toMatch(/slow-v2/);
    expect(done.reason).toMatch(/ready/);
    expect(h.weightWrites('slow').filter((w) => w !== undefined)).toEqual([]);
  });
});
