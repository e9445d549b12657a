import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Rollout, RolloutEvent } from '../../src/rollouts/model.ts';
import { RolloutStore } from '../../src/rollouts/store.ts';
import { startRollout } from '../../src/rollouts/verbs.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { buildTestDomain, specFor, type TestDomain } from '../helpers/domain.ts';
import { eventually, startTestRedis } from '../helpers/services.ts';

/** Retention of ended rollouts against a real Redis, with a retention of 1 s. */
describe('retention of ended rollouts (real Redis, 1 s retention)', () => {
  let redis: ManagedProcess;
  let domain: TestDomain;
  let store: RolloutStore;
  beforeAll(async () => {
    redis = await startTestRedis();
    domain = buildTestDomain({ redisUrl: redis.url });
    store = new RolloutStore(domain.redis, domain.prefix, { retentionSeconds: 1 });
  });
  afterAll(async () => {
    await domain?.close();
    await redis?.stop();
  });

  const note = (reason: string): RolloutEvent => ({ time: Date.now(), type: 'notification', reason });
  async function endedRollout(name: string, phase: 'succeeded' | 'failed' | 'aborted'): Promise<Rollout> {
    const { rollout } = await startRollout({ ctx: { ...domain.ctx, store }, input: specFor(name) });
    const cur = (await store.get(rollout.id))!;
    return store.update(cur, { ...cur, phase, endedAt: Date.now() }, [note(`ended ${phase}`)]);
  }
  const gone = async (key: string) => ((await domain.redis.exists(key)) === 0 ? true : undefined);

  it('an event appended to an ended rollout expires with it', async () => {
    const r = await endedRollout('late-event', 'succeeded');
    const docKey = `${domain.prefix}:r:rollout:${r.id}`;
    const eventsKey = store.eventsKey(r.id);
    // Delivered while the rollout is still kept: the stream keeps a TTL no longer than the rollout's.
    await store.appendEvents(r.id, [note('delivered')]);
    const ttl = await domain.redis.pttl(eventsKey);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual((await domain.redis.pttl(docKey)) + 50);
    expect((await store.events(r.id)).map((e) => e.reason)).toContain('delivered');

    // Delivered after the rollout expired: no stream is left behind that would never expire.
    await eventually(() => gone(docKey), 10_000);
    await eventually(() => gone(eventsKey), 10_000);
    await store.appendEvents(r.id, [note('delivered too late')]);
    expect(await domain.redis.exists(eventsKey)).toBe(0);
    expect(await domain.redis.keys(`${domain.prefix}:r:events:*`)).not.toContain(eventsKey);
  });

  it('an active rollout keeps its events with no TTL', async () => {
    const { rollout } = await startRollout({ ctx: { ...domain.ctx, store }, input: specFor('active') });
    await store.appendEvents(rollout.id, [note('delivered')]);
    expect(await domain.redis.pttl(store.eventsKey(rollout.id))).toBe(-1);
  });

  it('counts by phase only the rollouts that still exist', async () => {
    const before = await store.countByPhase();
    const ended = [await endedRollout('count-a', 'succeeded'), await endedRollout('count-b', 'failed')];
    const now = await store.countByPhase();
    expect(now.succeeded).toBe(before.succeeded! + 1);
    expect(now.failed).toBe(before.failed! + 1);
    for (const r of ended) await eventually(() => gone(`${domain.prefix}:r:rollout:${r.id}`), 10_000);
    // No list ran in between: the count itself leaves the expired ones out.
    const after = await store.countByPhase();
    expect(after.succeeded).toBe(0);
    expect(after.failed).toBe(0);
    expect(await domain.redis.sismember(`${domain.prefix}:r:idx:phase:succeeded`, ended[0]!.id)).toBe(0);
    expect(await domain.redis.zscore(`${domain.prefix}:r:idx:all`, ended[0]!.id)).toBeNull();
    expect(after.pending).toBe(before.pending);
  });
});
