import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GateStore } from '../../src/notify/gates.ts';
import type { GateKeeper } from '../../src/rollouts/context.ts';
import { tick } from '../../src/rollouts/engine.ts';
import type { CommandType, Rollout } from '../../src/rollouts/model.ts';
import { COMMAND_TYPES } from '../../src/rollouts/model.ts';
import { canTransition, commandRefusal, PHASES } from '../../src/rollouts/phases.ts';
import {
  approveGate,
  getRollout,
  retryRollout,
  rolloutEvents,
  sendCommand,
  startRollout,
} from '../../src/rollouts/verbs.ts';
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
import { startTestRedis } from '../helpers/services.ts';

// Ticks run by hand (no worker), so each test sees exactly what one tick does.
let redis: ManagedProcess;
let h: EngineHarness;
const provider = new FakeSuccessRate();

beforeAll(async () => {
  redis = await startTestRedis();
  h = await startEngineHarness({ redisUrl: redis.url, provider, noWorker: true, notify: {} });
});
afterAll(async () => {
  await h?.close();
  await redis?.stop();
});
beforeEach(() => {
  provider.rates.clear();
  h.sim.clearFaults();
});

const ctx = () => h.domain.ctx;
const vsOf = (name: string) => h.sim.getObject(VS, 'VirtualService', 'shop', name);
const get = (id: string) => getRollout({ ctx: ctx(), id });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const vsWrites = (name: string) =>
  h.sim.writeLog().filter((w) => w.resource === 'virtualservices' && w.name === name);

/** Ticks by hand until `until` holds (at most `max` ticks, `gapMs` apart). */
async function tickUntil(
  id: string,
  until: (r: Rollout) => boolean,
  max = 40,
  gapMs = 100,
): Promise<Rollout> {
  for (let i = 0; i < max; i++) {
    const r = await get(id);
    if (until(r)) return r;
    await tick(ctx(), id);
    await sleep(gapMs);
  }
  throw new Error(`rollout ${id} never reached the condition; it is ${(await get(id)).phase}`);
}

describe('one tick at a time (issue 11)', () => {
  it('defect 3: one table: every command the API accepts in a phase is a transition the engine allows', () => {
    for (const phase of PHASES) {
      for (const type of COMMAND_TYPES.filter((t) => t !== 'retry') as Exclude<CommandType, 'retry'>[]) {
        const refusal = commandRefusal({ phase, pause: { from: 'progressing', kind: 'gate' } }, type);
        if (refusal) continue;
        const to =
          type === 'abort'
            ? 'rolling-back'
            : type === 'pause'
              ? 'paused'
              : type === 'resume'
                ? 'progressing'
                : type === 'promote-full' || phase === 'awaiting-promotion'
                  ? 'promoting'
                  : phase === 'paused'
                    ? 'progressing'
                    : undefined;
        if (to) expect(canTransition(phase, to), `${type} in ${phase} → ${to}`).toBe(true);
      }
    }
    // pause in pending: valid in both
    expect(commandRefusal({ phase: 'pending' }, 'pause')).toBeUndefined();
    expect(canTransition('pending', 'paused')).toBe(true);
    expect(canTransition('paused', 'pending')).toBe(true);
  });

  it('defect 3: paused while pending, resumed: it starts as if never paused', async () => {
    seedTarget(h.sim, 'pp');
    const { rollout } = await startRollout({ ctx: ctx(), input: canarySpec('pp') });
    await sendCommand({ ctx: ctx(), id: rollout.id, type: 'pause', by: 'ops' });
    await tick(ctx(), rollout.id);
    expect(await get(rollout.id)).toMatchObject({
      phase: 'paused',
      pause: { from: 'pending' },
      commands: [],
    });
    // promote-full before the canary was ever made ready: refused by the same table
    await expect(sendCommand({ ctx: ctx(), id: rollout.id, type: 'promote-full' })).rejects.toThrow(
      /cannot promote-full rollout .*: it was paused while pending/,
    );
    await sendCommand({ ctx: ctx(), id: rollout.id, type: 'resume', by: 'ops' });
    const r = await tickUntil(rollout.id, (x) => x.phase === 'progressing' && x.applied);
    expect(r.errorCount).toBe(0);
    const events = await rolloutEvents({ ctx: ctx(), id: rollout.id });
    expect(events.map((e) => e.to).filter(Boolean)).toEqual([
      'pending',
      'paused',
      'pending',
      'initializing',
      'progressing',
    ]);
  });

  it('defect 3: a command that cannot apply any more is dropped with an event saying why', async () => {
    seedTarget(h.sim, 'drop');
    const { rollout } = await startRollout({ ctx: ctx(), input: canarySpec('drop') });
    await tickUntil(rollout.id, (r) => r.phase === 'progressing');
    // stored while it was paused, say; by the time a tick sees it, it no longer applies
    await ctx().store.mutate(rollout.id, (r) => ({
      next: { ...r, commands: [{ id: 'c1', type: 'resume', at: Date.now(), by: 'eve' }] },
    }));
    await tick(ctx(), rollout.id);
    const r = await get(rollout.id);
    expect(r.commands).toEqual([]);
    expect(r.errorCount).toBe(0);
    const events = await rolloutEvents({ ctx: ctx(), id: rollout.id });
    expect(
      events.some((e) => e.type === 'command' && /^resume by eve dropped: .*progressing/.test(e.reason)),
    ).toBe(true);
  });

  it('defect 5: a tick that lost its lease writes nothing to the cluster', async () => {
    seedTarget(h.sim, 'fence');
    const { rollout } = await startRollout({ ctx: ctx(), input: canarySpec('fence') });
    await tickUntil(rollout.id, (r) => r.phase === 'progressing' && !r.applied && r.traffic.canaryWeight > 0);
    const before = vsWrites('fence').length;
    h.sim.setFaults([{ verb: 'get', resource: 'virtualservices', latencyMs: 1_500, count: 1 }]);
    const running = tick(ctx(), rollout.id);
    await sleep(500);
    // the lease expired and another worker took the rollout over
    await h.domain.redis.set(`${h.domain.prefix}:r:lease:${rollout.id}`, 'another-worker', 'PX', 10_000);
    await running;
    expect(vsWrites('fence').slice(before)).toEqual([]);
    expect((await get(rollout.id)).applied).toBe(false);
    await h.domain.redis.del(`${h.domain.prefix}:r:lease:${rollout.id}`);
    // the tick that holds the lease writes the step
    await tick(ctx(), rollout.id);
    expect(canaryWeightOf(vsWrites('fence').slice(before)[0]?.body)).toBe(10);
  });

  it('defect 6: an approval survives a version conflict of the tick that used it', async () => {
    seedTarget(h.sim, 'appr');
    const { rollout } = await startRollout({
      ctx: ctx(),
      input: canarySpec('appr', {
        strategy: { type: 'canary', steps: [50], stepInterval: '300ms', confirmPromotion: true },
      }),
    });
    await tickUntil(rollout.id, (r) => r.phase === 'awaiting-promotion' && r.gate !== undefined);
    await approveGate({ ctx: ctx(), id: rollout.id, by: 'dana' });
    const gates = ctx().gates!;
    // a command lands while the tick runs: its save loses the compare-and-set
    const racing: GateKeeper = {
      ...gates,
      keyOf: gates.keyOf.bind(gates),
      async check(...args) {
        const out = await gates.check(...args);
        await ctx().store.mutate(rollout.id, (r) => ({ next: { ...r } }));
        return out;
      },
    };
    ctx().gates = racing;
    try {
      await tick(ctx(), rollout.id);
    } finally {
      ctx().gates = gates;
    }
    expect((await get(rollout.id)).phase).toBe('awaiting-promotion');
    const store = new GateStore(h.domain.redis, h.domain.prefix);
    expect(await store.hasApproval(rollout.id, 'confirm-promotion')).toBe(true);
    await tick(ctx(), rollout.id);
    const r = await get(rollout.id);
    expect(['promoting', 'succeeded']).toContain(r.phase);
    expect(await store.hasApproval(rollout.id, 'confirm-promotion')).toBe(false);
  });

  it('defect 1: a non-retryable error during a relabel promotion rolls back with the relabel undone', async () => {
    seedTarget(h.sim, 'gone');
    const drBefore = h.sim.getObject(VS, 'DestinationRule', 'shop', 'gone');
    const { rollout } = await startRollout({
      ctx: ctx(),
      input: canarySpec('gone', {
        strategy: {
          type: 'canary',
          steps: [50],
          stepInterval: '300ms',
          promotion: 'relabel',
          confirmPromotion: true,
        },
      }),
    });
    await tickUntil(rollout.id, (r) => r.phase === 'awaiting-promotion');
    await ctx().store.mutate(rollout.id, (r) => ({
      next: { ...r, commands: [{ id: 'p1', type: 'promote', at: Date.now(), by: 'ops' }] },
    }));
    // the relabel lands, the VirtualService write fails (retryable)
    h.sim.setFaults([{ verb: 'update', resource: 'virtualservices', status: 500 }]);
    await tick(ctx(), rollout.id);
    h.sim.clearFaults();
    const promoting = await get(rollout.id);
    expect(promoting.phase).toBe('promoting');
    const labelsOfV1 = () =>
      h.sim
        .getObject(VS, 'DestinationRule', 'shop', 'gone')
        .spec.subsets.find((s: { name: string }) => s.name === 'v1').labels;
    expect(labelsOfV1()).toEqual({ app: 'gone', version: 'v2' });
    // then the VirtualService is deleted: promotion fails for good
    h.sim.deleteObject(VS, 'VirtualService', 'shop', 'gone');
    await tickUntil(rollout.id, (r) => r.phase === 'failed', 20, 600);
    const r = await get(rollout.id);
    expect(r.reason).toMatch(/VirtualService shop\/gone does not exist/);
    expect(labelsOfV1()).toEqual({ app: 'gone', version: 'v1' });
    expect(JSON.stringify(h.sim.getObject(VS, 'DestinationRule', 'shop', 'gone').spec)).toBe(
      JSON.stringify(drBefore.spec),
    );
  });

  it('an abort stored while the promotion is written is dropped: the rollout ends as the cluster says, succeeded', async () => {
    seedTarget(h.sim, 'race');
    const { rollout } = await startRollout({
      ctx: ctx(),
      input: canarySpec('race', {
        strategy: { type: 'canary', steps: [50], stepInterval: '300ms', confirmPromotion: true },
      }),
    });
    await tickUntil(rollout.id, (r) => r.phase === 'awaiting-promotion');
    await sendCommand({ ctx: ctx(), id: rollout.id, type: 'promote', by: 'ops' });
    const base = ctx().router;
    ctx().router = (cluster) => {
      const router = base(cluster);
      return {
        ...router,
        async release(t) {
          await router.release(t);
          await sendCommand({ ctx: ctx(), id: rollout.id, type: 'abort', by: 'late' });
        },
      };
    };
    try {
      await tick(ctx(), rollout.id);
    } finally {
      ctx().router = base;
    }
    const r = await get(rollout.id);
    expect(r.phase).toBe('succeeded');
    expect(canaryWeightOf(vsOf('race'))).toBe(100);
    const events = await rolloutEvents({ ctx: ctx(), id: rollout.id });
    expect(
      events.some(
        (e) =>
          e.type === 'command' && /^abort by late dropped: the promotion was already written/.test(e.reason),
      ),
    ).toBe(true);
  });

  it('defect 7: the tick that decides a rollback writes it', async () => {
    seedTarget(h.sim, 'now');
    const { rollout } = await startRollout({
      ctx: ctx(),
      input: canarySpec('now', { strategy: { type: 'canary', steps: [20, 40], stepInterval: '30s' } }),
    });
    await tickUntil(rollout.id, (r) => r.phase === 'progressing' && r.applied);
    expect(canaryWeightOf(vsOf('now'))).toBe(20);
    provider.set('now', 'v2', 50);
    await sleep(300); // the guard interval (250ms) elapses
    const before = vsWrites('now').length;
    await tick(ctx(), rollout.id);
    const r = await get(rollout.id);
    expect(r.phase).toBe('failed');
    expect(canaryWeightOf(vsOf('now'))).toBeUndefined();
    expect(vsWrites('now').length).toBeGreaterThan(before);
  });

  /** The router with `after` run once right after the first call of `verb`, as a command stored while that write was in flight. */
  function afterWrite(verb: 'setWeights' | 'ensureCanarySubset', after: () => Promise<unknown>): () => void {
    const base = ctx().router;
    let done = false;
    ctx().router = (cluster) => {
      const router = base(cluster);
      const wrapped = { ...router };
      // biome-ignore lint/suspicious/noExplicitAny: both verbs take a target and pass their result through
      (wrapped as any)[verb] = async (...args: any[]) => {
        // biome-ignore lint/suspicious/noExplicitAny: see above
        const out = await (router as any)[verb](...args);
        if (!done) {
          done = true;
          await after();
        }
        return out;
      };
      return wrapped;
    };
    return () => {
      ctx().router = base;
    };
  }

  it('model seed 135: a step written while a command is stored still gets its weight event (the events explain every change)', async () => {
    seedTarget(h.sim, 'wev');
    const { rollout } = await startRollout({
      ctx: ctx(),
      input: canarySpec('wev', { strategy: { type: 'canary', steps: [20, 50], stepInterval: '30s' } }),
    });
    await tickUntil(
      rollout.id,
      (r) => r.phase === 'progressing' && !r.applied && r.progress.stageIndex === 0,
    );
    const restore = afterWrite('setWeights', () =>
      sendCommand({ ctx: ctx(), id: rollout.id, type: 'abort', by: 'ops' }),
    );
    try {
      await tick(ctx(), rollout.id);
    } finally {
      restore();
    }
    expect(canaryWeightOf(vsOf('wev'))).toBe(20);
    await tickUntil(rollout.id, (r) => r.phase === 'aborted');
    const events = await rolloutEvents({ ctx: ctx(), id: rollout.id });
    expect(events.filter((e) => e.type === 'weight').map((e) => e.weights?.canary)).toEqual([0, 20, 0]);
  });

  it('model seed 1054: an abort stored while the canary subset is created leaves the DestinationRule as it was', async () => {
    seedTarget(h.sim, 'sub');
    const drBefore = h.sim.getObject(VS, 'DestinationRule', 'shop', 'sub');
    const { rollout } = await startRollout({ ctx: ctx(), input: canarySpec('sub') });
    await tickUntil(rollout.id, (r) => r.phase === 'initializing');
    const restore = afterWrite('ensureCanarySubset', () =>
      sendCommand({ ctx: ctx(), id: rollout.id, type: 'abort', by: 'ops' }),
    );
    try {
      await tick(ctx(), rollout.id);
    } finally {
      restore();
    }
    const r = await tickUntil(rollout.id, (x) => x.phase === 'aborted');
    const dr = h.sim.getObject(VS, 'DestinationRule', 'shop', 'sub');
    expect(dr.spec).toEqual(drBefore.spec);
    expect(dr.metadata.annotations ?? {}).toEqual(drBefore.metadata.annotations ?? {});
    // The events say vane created the subset (and the rollout knows it), though the abort won the race.
    const events = await rolloutEvents({ ctx: ctx(), id: rollout.id });
    expect(events.some((e) => e.type === 'subset' && /created subset 'v2'/.test(e.reason))).toBe(true);
    expect(r.createdSubset).toBe(true);
  });

  it('model seed 5072: a promote carried out before a decided step is written does not skip that step', async () => {
    seedTarget(h.sim, 'skip');
    const { rollout } = await startRollout({
      ctx: ctx(),
      input: canarySpec('skip', { strategy: { type: 'canary', steps: [20, 50, 80], stepInterval: '30s' } }),
    });
    // The first step is decided and saved, not yet written.
    await tickUntil(
      rollout.id,
      (r) => r.phase === 'progressing' && !r.applied && r.progress.stageIndex === 0,
    );
    await sendCommand({ ctx: ctx(), id: rollout.id, type: 'promote', by: 'ops' });
    await tickUntil(rollout.id, (r) => r.phase === 'progressing' && r.applied);
    await sendCommand({ ctx: ctx(), id: rollout.id, type: 'promote', by: 'ops' });
    await tickUntil(rollout.id, (r) => r.phase === 'progressing' && r.applied && r.progress.stageIndex >= 1);
    const written = vsWrites('skip')
      .map((w) => canaryWeightOf(w.body))
      .filter((w, i, all) => w !== undefined && w !== all[i - 1]);
    expect(written).toEqual([20, 50]);
  });

  it('retry applies only to a failed or aborted rollout: a succeeded one is refused and its route stays on the canary', async () => {
    expect(commandRefusal({ phase: 'succeeded' }, 'retry')).toMatch(/succeeded/);
    expect(commandRefusal({ phase: 'failed' }, 'retry')).toBeUndefined();
    expect(commandRefusal({ phase: 'aborted' }, 'retry')).toBeUndefined();
    expect(commandRefusal({ phase: 'progressing' }, 'retry')).toBeDefined();
    seedTarget(h.sim, 'again');
    const { rollout } = await startRollout({
      ctx: ctx(),
      input: canarySpec('again', { strategy: { type: 'canary', steps: [50], stepInterval: '300ms' } }),
    });
    await tickUntil(rollout.id, (r) => r.phase === 'succeeded', 60);
    expect(canaryWeightOf(vsOf('again'))).toBe(100);
    await expect(retryRollout({ ctx: ctx(), id: rollout.id, by: 'ci' })).rejects.toThrow(
      /cannot retry rollout .*: it succeeded/,
    );
    expect(canaryWeightOf(vsOf('again'))).toBe(100);
  });
});
