import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RolloutError } from '../../src/rollouts/errors.ts';
import type { Rollout } from '../../src/rollouts/model.ts';
import { WebhookSchema } from '../../src/rollouts/spec.ts';
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
import { Receiver } from '../notify/fixtures.ts';

let redis: ManagedProcess;
let h: EngineHarness;
let rx: Receiver;
const provider = new FakeSuccessRate();

beforeAll(async () => {
  redis = await startTestRedis();
  h = await startEngineHarness({ redisUrl: redis.url, provider, notify: {} });
  rx = await new Receiver().start();
});
afterAll(async () => {
  await h?.close();
  await rx?.stop();
  await redis?.stop();
});
beforeEach(() => {
  provider.rates.clear();
  h.sim.clearFaults();
});

const ctx = () => h.domain.ctx;
const vsOf = (name: string) => h.sim.getObject(VS, 'VirtualService', 'shop', name);
const drOf = (name: string) => h.sim.getObject(VS, 'DestinationRule', 'shop', name);
const get = (id: string) => getRollout({ ctx: ctx(), id });
const inPhase = (id: string, phase: Rollout['phase'], timeoutMs = 20_000) =>
  eventually(async () => {
    const r = await get(id);
    return r.phase === phase ? r : undefined;
  }, timeoutMs);
/** Every managed route (the one named default) sends everything to subset v1. */
const allOnStable = (name: string) => {
  const route = vsOf(name).spec.http.find((x: { name: string }) => x.name === 'default').route;
  return route.length === 1 && route[0].destination.subset === 'v1' && (route[0].weight ?? 100) === 100;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('rollback tells the truth (issue 11)', () => {
  it('defect 1: a relabel promotion whose VirtualService write fails, then an abort: 100% on stable, and stable selects the original pods again', async () => {
    seedTarget(h.sim, 'rl1');
    const drBefore = drOf('rl1');
    const vsBefore = vsOf('rl1');
    const { rollout } = await startRollout({
      ctx: ctx(),
      input: canarySpec('rl1', {
        strategy: {
          type: 'canary',
          steps: [50],
          stepInterval: '300ms',
          promotion: 'relabel',
          confirmPromotion: true,
        },
      }),
    });
    await inPhase(rollout.id, 'awaiting-promotion');
    h.sim.setFaults([{ verb: 'update', resource: 'virtualservices', status: 500 }]);
    await sendCommand({ ctx: ctx(), id: rollout.id, type: 'promote', by: 'ops' });
    // the relabel landed; the VirtualService write keeps failing
    await eventually(async () => {
      const r = await get(rollout.id);
      return r.phase === 'promoting' && r.errorCount > 0 ? r : undefined;
    });
    const v1 = (name: string) =>
      drOf(name).spec.subsets.find((s: { name: string }) => s.name === 'v1').labels as Record<string, string>;
    expect(v1('rl1')).toEqual({ app: 'rl1', version: 'v2' });
    await sendCommand({ ctx: ctx(), id: rollout.id, type: 'abort', by: 'ops', reason: 'bad build' });
    await sleep(300);
    h.sim.clearFaults();
    const done = await h.settle(rollout.id);
    expect(done.phase).toBe('aborted');
    expect(allOnStable('rl1')).toBe(true);
    expect(v1('rl1')).toEqual({ app: 'rl1', version: 'v1' });
    expect(JSON.stringify(drOf('rl1').spec)).toBe(JSON.stringify(drBefore.spec));
    expect(JSON.stringify(vsOf('rl1').spec)).toBe(JSON.stringify(vsBefore.spec));
    expect(drOf('rl1').metadata.annotations ?? {}).toEqual({});
    expect(vsOf('rl1').metadata.annotations ?? {}).toEqual({});
  });

  it('defect 2: rollback restores a canary subset that existed before, byte for byte; a field someone else changed meanwhile stays', async () => {
    seedTarget(h.sim, 'pre');
    const dr = drOf('pre');
    dr.spec.subsets.push({
      name: 'v2',
      labels: { app: 'pre', version: 'v2-old', track: 'canary' },
      trafficPolicy: { connectionPool: { tcp: { maxConnections: 7 } } },
    });
    h.sim.putObject(dr);
    const drBefore = drOf('pre');
    const vsBefore = vsOf('pre');
    const { rollout } = await startRollout({ ctx: ctx(), input: canarySpec('pre') });
    await eventually(async () => (canaryWeightOf(vsOf('pre')) === 20 ? true : undefined));
    // while vane holds the target, someone changes the load balancer
    const edited = drOf('pre');
    expect(edited.spec.subsets[1].labels).toEqual({ app: 'pre', version: 'v2' });
    edited.spec.trafficPolicy = { loadBalancer: { simple: 'ROUND_ROBIN' } };
    h.sim.putObject(edited);
    await sendCommand({ ctx: ctx(), id: rollout.id, type: 'abort', by: 'ops' });
    const done = await h.settle(rollout.id);
    expect(done.phase).toBe('aborted');
    const after = drOf('pre');
    const want = { ...drBefore.spec, trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } } };
    expect(JSON.stringify(after.spec)).toBe(JSON.stringify(want));
    expect(after.metadata.annotations ?? {}).toEqual({});
    expect(allOnStable('pre')).toBe(true);
    expect(JSON.stringify(vsOf('pre').spec)).toBe(JSON.stringify(vsBefore.spec));
  });

  it('defect 3: a rollout paused while pending is paused (no error loop), and an abort then ends it and frees the target', async () => {
    seedTarget(h.sim, 'wedge');
    const worker = h.pool.workers.find((w) => w.name === 'ticks')!;
    await worker.pause();
    let id: string;
    try {
      const { rollout } = await startRollout({ ctx: ctx(), input: canarySpec('wedge') });
      id = rollout.id;
      await sendCommand({ ctx: ctx(), id, type: 'pause', by: 'ops' });
    } finally {
      worker.resume();
    }
    const paused = await inPhase(id, 'paused', 5_000);
    expect(paused.pause).toMatchObject({ from: 'pending', kind: 'manual' });
    await sleep(1_000);
    const still = await get(id);
    expect(still.phase).toBe('paused');
    expect(still.errorCount).toBe(0);
    expect(still.commands).toEqual([]);
    const events = await rolloutEvents({ ctx: ctx(), id });
    expect(events.filter((e) => e.type === 'error')).toEqual([]);
    expect(h.sim.writeLog().filter((w) => w.name === 'wedge')).toEqual([]);

    await sendCommand({ ctx: ctx(), id, type: 'abort', by: 'ops' });
    const done = await h.settle(id, 5_000);
    expect(done.phase).toBe('aborted');
    // the target is free again
    const next = await startRollout({ ctx: ctx(), input: canarySpec('wedge') });
    await sendCommand({ ctx: ctx(), id: next.rollout.id, type: 'abort' });
    expect((await h.settle(next.rollout.id)).phase).toBe('aborted');
  });

  it('defect 4: a Redis read that throws in a tick does not leave the rollout without a tick', async () => {
    seedTarget(h.sim, 'broken');
    const { rollout } = await startRollout({
      ctx: ctx(),
      input: canarySpec('broken', { strategy: { type: 'canary', steps: [20, 40, 60], stepInterval: '1s' } }),
    });
    await eventually(async () => (canaryWeightOf(vsOf('broken')) === 20 ? true : undefined));
    // the stored rollout cannot be read for a while: every read of it throws. Its version moves too,
    // so a tick that read it just before cannot save over the broken document.
    const key = `${h.domain.prefix}:r:rollout:${rollout.id}`;
    const [saved, version] = (await h.domain.redis.eval(
      "local d = redis.call('HGET', KEYS[1], 'doc'); local v = redis.call('HGET', KEYS[1], 'v'); redis.call('HSET', KEYS[1], 'doc', '{broken'); redis.call('HINCRBY', KEYS[1], 'v', 1000); return {d, v}",
      1,
      key,
    )) as [string, string];
    await expect(get(rollout.id)).rejects.toThrow();
    await sleep(1_500);
    await h.domain.redis.eval(
      "if redis.call('HGET', KEYS[1], 'doc') == '{broken' then redis.call('HSET', KEYS[1], 'doc', ARGV[1], 'v', ARGV[2]) end",
      1,
      key,
      saved,
      version,
    );
    const done = await h.settle(rollout.id, 30_000);
    expect(done.phase).toBe('succeeded');
  }, 45_000);

  it('a Redis stall longer than a client command timeout (CLIENT PAUSE 5.6s): the rollout goes on', async () => {
    seedTarget(h.sim, 'stall');
    const { rollout } = await startRollout({
      ctx: ctx(),
      input: canarySpec('stall', { strategy: { type: 'canary', steps: [20, 40, 60], stepInterval: '1s' } }),
    });
    await eventually(async () => (canaryWeightOf(vsOf('stall')) === 20 ? true : undefined));
    const admin = new Redis(redis.url);
    try {
      // longer than a client's command timeout (5s): the tick running now fails its Redis calls
      await admin.call('CLIENT', 'PAUSE', '5600', 'ALL');
    } finally {
      admin.disconnect();
    }
    const done = await h.settle(rollout.id, 40_000);
    expect(done.phase).toBe('succeeded');
  }, 60_000);

  it('defect 4: a tick job that is lost is re-added by the sweep of a worker', async () => {
    seedTarget(h.sim, 'lost');
    const { rollout } = await startRollout({
      ctx: ctx(),
      input: canarySpec('lost', { strategy: { type: 'canary', steps: [20, 40], stepInterval: '2s' } }),
    });
    await eventually(async () => (canaryWeightOf(vsOf('lost')) === 20 ? true : undefined));
    // the job disappears (as when a tick failed with the old single attempt, or Redis lost it)
    await eventually(
      async () => {
        await h.domain.ticks.forget(rollout.id);
        return (await h.domain.ticks.state(rollout.id)).scheduled ? undefined : true;
      },
      10_000,
      20,
    );
    const done = await h.settle(rollout.id, 30_000);
    expect(done.phase).toBe('succeeded');
  }, 45_000);

  it('defect 5: webhook timeouts are capped at 30s (default 10s), the field named', async () => {
    const err = await startRollout({
      ctx: ctx(),
      input: canarySpec('cap', {
        webhooks: [{ type: 'confirm-rollout', url: 'https://gate.example/check', timeout: '24h' }],
      }),
    }).catch((e) => e);
    expect(err).toBeInstanceOf(RolloutError);
    expect(err.message).toMatch(/^webhooks\[0\]\.timeout: at most 30s/);
    expect(WebhookSchema.parse({ type: 'confirm-rollout', url: 'https://gate.example/check' }).timeout).toBe(
      10_000,
    );
  });

  it('defect 5: an abort acts within one tick while a gate webhook never answers', async () => {
    seedTarget(h.sim, 'hang');
    rx.on('/hang/start', () => 'hang');
    const { rollout } = await startRollout({
      ctx: ctx(),
      input: canarySpec('hang', {
        webhooks: [{ type: 'confirm-rollout', url: rx.url('/hang/start'), timeout: '30s' }],
      }),
    });
    await eventually(async () => (rx.at('/hang/start').length > 0 ? true : undefined));
    await sleep(200);
    const asked = Date.now();
    await sendCommand({ ctx: ctx(), id: rollout.id, type: 'abort', by: 'ops' });
    const done = await h.settle(rollout.id, 10_000);
    expect(done.phase).toBe('aborted');
    expect(done.endedAt! - asked).toBeLessThan(3_000);
  });
});
