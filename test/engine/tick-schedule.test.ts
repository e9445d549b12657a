import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runClaimedTick } from '../../src/rollouts/engine.ts';
import type { Rollout } from '../../src/rollouts/model.ts';
import { getRollout, sendCommand, startRollout } from '../../src/rollouts/verbs.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import type { TickQueue } from '../../src/workers/ticks.ts';
import {
  canarySpec,
  type EngineHarness,
  FakeSuccessRate,
  seedTarget,
  startEngineHarness,
} from '../helpers/engine.ts';
import { eventually, startTestRedis } from '../helpers/services.ts';

/**
 * The tick schedule (src/workers/ticks.ts) on a real Redis of its own, so that Redis's own
 * command counts are this test's alone: what a guard tick costs, a held-back guard save that loses
 * to a command, a lost due time, and a worker that stops mid-tick.
 */
let redis: ManagedProcess;
let h: EngineHarness;
let admin: Redis;
const provider = new FakeSuccessRate();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  redis = await startTestRedis();
  admin = new Redis(redis.url);
  h = await startEngineHarness({ redisUrl: redis.url, provider });
});
afterAll(async () => {
  await h?.close();
  admin?.disconnect();
  await redis?.stop();
});

const ctx = () => h.domain.ctx;
const ticks = () => h.domain.ticks as TickQueue;
const get = (id: string) => getRollout({ ctx: ctx(), id });

async function atFirstStep(name: string, guardInterval: string): Promise<Rollout> {
  seedTarget(h.sim, name);
  const { rollout } = await startRollout({
    ctx: ctx(),
    input: canarySpec(name, {
      strategy: { type: 'canary', steps: [10, 50], stepInterval: '1h' },
      analysis: {
        guardInterval,
        minRequests: 0,
        metrics: [
          {
            name: 'success-rate',
            template: 'request-success-rate',
            critical: true,
            thresholdRange: { min: 99 },
          },
        ],
      },
    }),
  });
  return eventually(async () => {
    const r = await get(rollout.id);
    return r.phase === 'progressing' && r.applied && r.lastAnalysis ? r : undefined;
  }, 20_000);
}

/** Redis's own count of commands served, by name (those run inside scripts included), without INFO and CONFIG. */
async function commandStats(): Promise<Map<string, number>> {
  const text = await admin.info('commandstats');
  const calls = new Map<string, number>();
  for (const m of text.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) {
    if (m[1] !== 'info' && m[1] !== 'config') calls.set(m[1]!, Number(m[2]));
  }
  return calls;
}

describe('the tick schedule', () => {
  it('a guard tick costs Redis at most 10 commands, counted by Redis itself, and every rollout keeps its rhythm', async () => {
    const rollouts = await Promise.all(
      Array.from({ length: 20 }, (_, i) => atFirstStep(`guard-cost-${i}`, '200ms')),
    );
    await sleep(500);
    const before = await Promise.all(rollouts.map((r) => get(r.id)));
    const c0 = await commandStats();
    const t0 = Date.now();
    await sleep(3_000);
    const c1 = await commandStats();
    const seconds = (Date.now() - t0) / 1000;
    const after = await Promise.all(rollouts.map((r) => get(r.id)));
    // every guard tick saves its check: the version counts the ticks
    const guardTicks = after.reduce((n, r, i) => n + (r.version - before[i]!.version), 0);
    let commands = 0;
    const byName: Record<string, number> = {};
    for (const [name, n] of c1) {
      const d = n - (c0.get(name) ?? 0);
      commands += d;
      if (d) byName[name] = d;
    }
    // 20 rollouts at 200 ms for 3 s: about 300 guard ticks
    expect(guardTicks, JSON.stringify(byName)).toBeGreaterThan(20 * (seconds / 0.2) * 0.8);
    // Each claim (one script: ZRANGEBYSCORE, ZRANGE) is shared by the ticks it claims, and the
    // sweep (SSCAN, ZMSCORE, its first call by EVAL) is per worker, not per tick: with only 20
    // rollouts claims are small, at scale (bench/engine-capacity.ts) the whole is under 10 a tick.
    const claims = byName.zrangebyscore ?? 0;
    // each sweep batch is one script call (EVALSHA, and EVAL once on NOSCRIPT) running ZMSCORE
    const sweeps = byName.zmscore ?? 0;
    const shared = 3 * claims + (byName.sscan ?? 0) + 2 * sweeps + (byName.eval ?? 0);
    expect((commands - shared) / guardTicks, JSON.stringify(byName)).toBeLessThanOrEqual(9);
    expect(claims, JSON.stringify(byName)).toBeLessThan(guardTicks);
    // the scripts are called by their hash
    expect(byName.evalsha ?? 0).toBeGreaterThanOrEqual(guardTicks);
    for (const r of after) expect(r.phase).toBe('progressing');
  }, 60_000);

  it('a guard result the schedule writes in its own script is told to the store’s write listeners (the API’s copy drops it at once)', async () => {
    const r = await atFirstStep('deferred-heard', '200ms');
    const heard: string[] = [];
    const off = ctx().store.onDocumentWrite((id) => heard.push(id));
    try {
      const before = (await get(r.id)).version;
      await eventually(async () => ((await get(r.id)).version >= before + 3 ? true : undefined), 5_000);
      // every guard tick of this rollout saved through the schedule's script, none through the store
      expect(heard.filter((id) => id === r.id).length).toBeGreaterThanOrEqual(3);
    } finally {
      off();
    }
  }, 30_000);

  it('a guard result held back for the tick’s end loses to a command stored meanwhile, and the command is carried out at once', async () => {
    const r = await atFirstStep('deferred', '300ms');
    await h.pool.workers.find((w) => w.name === 'ticks')!.pause();
    try {
      // claim it once its guard check is due
      let claimed: Awaited<ReturnType<TickQueue['claim']>>['claimed'] = [];
      await eventually(async () => {
        claimed = (await ticks().claim(10)).claimed.filter((c) => c.id === r.id);
        return claimed.length ? true : undefined;
      }, 5_000);
      const c = claimed[0]!;
      const res = await runClaimedTick(ctx(), c);
      expect(res.outcome.done).toBe(false);
      expect(res.deferred?.version).toBe(c.rollout!.version);
      // the operator pauses it before the tick gives it back
      await sendCommand({ ctx: ctx(), id: r.id, type: 'pause', by: 'ops' });
      const fin = await ticks().finish(c, res.outcome, res.known, res.deferred);
      expect(fin).toEqual({ held: true, saved: false });
      const state = await ticks().state(r.id);
      expect(state.scheduled && state.dueAt <= Date.now() + 60).toBe(true);
    } finally {
      h.pool.workers.find((w) => w.name === 'ticks')!.resume();
    }
    const paused = await eventually(async () => {
      const x = await get(r.id);
      return x.phase === 'paused' ? x : undefined;
    }, 5_000);
    expect(paused.pause).toMatchObject({ kind: 'manual' });
  }, 30_000);

  it('a claimed rollout whose worker never gives it back comes due again when the lease expires', async () => {
    const r = await atFirstStep('stalled', '300ms');
    const loop = h.pool.workers.find((w) => w.name === 'ticks')!;
    await loop.pause();
    let claimedAt = 0;
    try {
      await eventually(async () => {
        const got = (await ticks().claim(10, 1_000)).claimed.filter((c) => c.id === r.id);
        claimedAt = Date.now();
        return got.length ? true : undefined;
      }, 5_000);
      // claimed with a 1 s lease, then dropped (the worker died)
      const state = await ticks().state(r.id);
      expect(state.scheduled && state.dueAt >= claimedAt + 900).toBe(true);
    } finally {
      loop.resume();
    }
    const before = (await get(r.id)).version;
    await eventually(async () => ((await get(r.id)).version > before + 2 ? true : undefined), 10_000);
    expect(Date.now() - claimedAt).toBeGreaterThanOrEqual(900);
  }, 30_000);

  it('an active rollout whose due time is lost gets one from the sweep; an ended one leaves the schedule', async () => {
    const r = await atFirstStep('lost-due', '300ms');
    await eventually(async () => {
      await ticks().forget(r.id);
      return (await ticks().state(r.id)).scheduled ? undefined : true;
    }, 5_000);
    expect(await ticks().missing([r.id])).toEqual([r.id]);
    expect((await ticks().state(r.id)).scheduled).toBe(true);
    await sendCommand({ ctx: ctx(), id: r.id, type: 'abort', by: 'ops' });
    const done = await h.settle(r.id, 10_000);
    expect(done.phase).toBe('aborted');
    await eventually(async () => ((await ticks().state(r.id)).scheduled ? undefined : true), 5_000);
  }, 30_000);
});
