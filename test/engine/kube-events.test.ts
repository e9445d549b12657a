import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKubeTrafficRouter } from '../../src/mesh/kube-router.ts';
import { createKubeEventSink } from '../../src/mesh/kube-workloads.ts';
import { kubeEventsOnEvents } from '../../src/rollouts/kube-events.ts';
import { startRollout } from '../../src/rollouts/verbs.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { canarySpec, type EngineHarness, seedTarget, startEngineHarness } from '../helpers/engine.ts';
import { eventually, startTestRedis } from '../helpers/services.ts';

/** Kubernetes Events are best effort: a slow or failing Events API never fails or holds a tick. */
describe('Kubernetes Events from rollouts (kube simulator, real Redis)', () => {
  let redis: ManagedProcess;
  let h: EngineHarness;
  beforeAll(async () => {
    redis = await startTestRedis();
    h = await startEngineHarness({ redisUrl: redis.url });
    const kubeConfig = h.sim.kubeConfig();
    const router = createKubeTrafficRouter({ kubeConfig, timeoutMs: 2_000 });
    const sink = createKubeEventSink({
      kubeConfig,
      timeoutMs: 500,
      uidOf: async (ns, name) => (await router.getVirtualService(ns, name))?.metadata?.uid,
      onOutcome: (o) => h.domain.ctx.recorder.kubeEvent(o),
    });
    h.domain.ctx.onEvents = kubeEventsOnEvents(sink);
  });
  afterAll(async () => {
    await h?.close();
    await redis?.stop();
  });

  const counted = async (outcome: string) => {
    const text = await h.domain.ctx.recorder.metrics();
    return Number(new RegExp(`vane_kube_events_total\\{outcome="${outcome}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  };

  it('a rollout runs through an Events API that hangs or fails; the failures are counted', async () => {
    seedTarget(h.sim, 'hangs');
    // Every Event create hangs past the 500 ms bound, then the API answers 500s.
    h.sim.setFaults([
      { verb: 'create', resource: 'events', latencyMs: 5_000, count: 3 },
      { verb: 'create', resource: 'events', status: 500 },
    ]);
    const started = Date.now();
    const { rollout } = await startRollout({
      ctx: h.domain.ctx,
      input: canarySpec('hangs', { analysis: { guardInterval: '250ms', minRequests: 0 } }),
    });
    const r = await h.settle(rollout.id);
    expect(r.phase).toBe('succeeded');
    // Five steps of 1 s: the hung Events added nothing that shows.
    expect(Date.now() - started).toBeLessThan(15_000);
    await eventually(async () => ((await counted('error')) >= 5 ? true : undefined), 20_000);
    expect(await counted('ok')).toBe(0);
    expect(h.sim.listObjects('v1', 'Event', 'shop')).toEqual([]);

    h.sim.clearFaults();
    seedTarget(h.sim, 'fine');
    const next = await startRollout({
      ctx: h.domain.ctx,
      input: canarySpec('fine', { analysis: { guardInterval: '250ms', minRequests: 0 } }),
    });
    expect((await h.settle(next.rollout.id)).phase).toBe('succeeded');
    const events = await eventually(async () => {
      const e = h.sim
        .listObjects('v1', 'Event', 'shop')
        .filter((x: { involvedObject: { name: string } }) => x.involvedObject.name === 'fine');
      return e.some((x: { reason: string }) => x.reason === 'Promoted') ? e : undefined;
    }, 10_000);
    const vs = h.sim.getObject('networking.istio.io/v1', 'VirtualService', 'shop', 'fine');
    expect(events[0]).toMatchObject({
      type: 'Normal',
      source: { component: 'vane' },
      involvedObject: { kind: 'VirtualService', name: 'fine', namespace: 'shop', uid: vs.metadata.uid },
    });
    // In the order vane decided them: Progressing first, Promoted last.
    const reasons = events.map((x: { reason: string }) => x.reason);
    expect(reasons[0]).toBe('Progressing');
    expect(reasons.at(-1)).toBe('Promoted');
    expect(reasons.filter((x: string) => x === 'Progressing').length).toBeGreaterThanOrEqual(6);
  });
});
