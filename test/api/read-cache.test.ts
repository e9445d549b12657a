import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type App, newApp } from '../../src/api/app.ts';
import { connectRedis, type Redis } from '../../src/redis.ts';
import type { Rollout } from '../../src/rollouts/model.ts';
import { RolloutReadCache } from '../../src/rollouts/read-cache.ts';
import { startRollout } from '../../src/rollouts/verbs.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { buildTestDomain, specFor, type TestDomain } from '../helpers/domain.ts';
import { eventually, startTestRedis } from '../helpers/services.ts';

/** The API's process: its domain, its client-side cache of rollouts and the app reading through it. */
interface ApiProcess {
  domain: TestDomain;
  reads: RolloutReadCache;
  app: App;
}

describe('GET /api/v1/rollouts/{id} with client-side caching (real Redis)', () => {
  let redis: ManagedProcess;
  let admin: Redis;
  const opened: { close(): Promise<void> }[] = [];
  let n = 0;

  beforeAll(async () => {
    redis = await startTestRedis();
    admin = connectRedis(redis.url, { role: 'client', name: 'test-admin' });
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((o) => o.close()));
  });
  afterAll(async () => {
    await admin?.quit();
    await redis?.stop();
  });

  /** An API process with its cache ready, and another process (its own connection) sharing its rollouts. */
  async function start(opts: { maxEntries?: number; maxLagMs?: number } = {}) {
    const name = `rc${process.pid}n${n++}`;
    const domain = buildTestDomain({ redisUrl: redis.url });
    const other = buildTestDomain({ redisUrl: redis.url, prefix: domain.prefix });
    const reads = new RolloutReadCache({
      redisUrl: redis.url,
      store: domain.ctx.store,
      name,
      retryMs: 100,
      ...opts,
    }).start();
    opened.push(reads, domain, other);
    const app = newApp({
      logger: domain.ctx.logger,
      recorder: domain.ctx.recorder,
      readiness: [],
      domain: domain.ctx,
      rolloutReads: reads,
    });
    await eventually(async () => (reads.stats.usable ? true : undefined), 5_000, 10);
    return { api: { domain, reads, app } satisfies ApiProcess, other, name };
  }

  async function get(api: ApiProcess, id: string): Promise<{ status: number; rollout: Rollout }> {
    const res = await api.app.request(`/api/v1/rollouts/${id}`);
    return { status: res.status, rollout: ((await res.json()) as { rollout: Rollout }).rollout };
  }

  /** A change by `writer`'s store: the reason, with the version bumped. */
  async function change(writer: TestDomain, id: string, reason: string): Promise<Rollout> {
    const cur = (await writer.ctx.store.get(id))!;
    return writer.ctx.store.update(cur, { ...cur, reason });
  }

  /** The next GETs until one shows `reason`, for at most `ms`; the time it took. */
  async function seenWithin(api: ApiProcess, id: string, reason: string, ms: number): Promise<number> {
    const started = performance.now();
    for (;;) {
      const { rollout } = await get(api, id);
      if (rollout.reason === reason) return performance.now() - started;
      if (performance.now() - started > ms) throw new Error(`'${reason}' not seen within ${ms}ms`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  it('answers from its copy, and sees a write by another connection once the invalidation arrives', async () => {
    const { api, other } = await start();
    const { rollout } = await startRollout({ ctx: api.domain.ctx, input: specFor('reviews') });
    expect((await get(api, rollout.id)).rollout.version).toBe(1);
    expect(api.reads.stats.entries).toBe(1);
    // Kept: a hundred reads, no change.
    for (let i = 0; i < 100; i++) expect((await get(api, rollout.id)).rollout.version).toBe(1);

    await change(other, rollout.id, 'changed elsewhere');
    // Well inside the bound on the invalidation's delay (50 ms by default), with room for a slow machine.
    await seenWithin(api, rollout.id, 'changed elsewhere', 2_000);
    expect((await get(api, rollout.id)).rollout.version).toBe(2);
    expect(api.reads.stats.entries).toBe(1);
  });

  it('sees a write by its own process at once, with no wait for Redis', async () => {
    const { api } = await start();
    const { rollout } = await startRollout({ ctx: api.domain.ctx, input: specFor('ratings') });
    await get(api, rollout.id);
    for (let i = 1; i <= 20; i++) {
      await change(api.domain, rollout.id, `own change ${i}`);
      const seen = await get(api, rollout.id);
      expect(seen.rollout.reason).toBe(`own change ${i}`);
      expect(seen.rollout.version).toBe(i + 1);
    }
  });

  for (const which of ['invalidations', 'tracked'] as const) {
    it(`reads Redis while its ${which} connection is gone (CLIENT KILL), then caches again`, async () => {
      const { api, other, name } = await start();
      const { rollout } = await startRollout({ ctx: api.domain.ctx, input: specFor(`kill-${which}`) });
      await get(api, rollout.id);
      expect(api.reads.stats.entries).toBe(1);

      await admin.call(
        'CLIENT',
        'KILL',
        'USER',
        'default',
        'SKIPME',
        'no',
        'ID',
        String(await clientId(`${name}-${which}`)),
      );
      // The copy is dropped as soon as the connection's close is seen.
      await eventually(async () => (api.reads.stats.usable ? undefined : true), 2_000, 1);
      expect(api.reads.stats.entries).toBe(0);
      // Meanwhile every read goes to Redis: another connection's write is seen at once.
      await change(other, rollout.id, 'while untracked');
      const seen = await get(api, rollout.id);
      expect(seen.status).toBe(200);
      expect(seen.rollout.reason).toBe('while untracked');
      expect(api.reads.stats.entries).toBe(0);

      // A new pair comes up by itself; the copy is used again and kept fresh.
      await eventually(
        async () => (api.reads.stats.usable && api.reads.stats.sessions === 2 ? true : undefined),
        5_000,
        10,
      );
      await get(api, rollout.id);
      expect(api.reads.stats.entries).toBe(1);
      await change(other, rollout.id, 'after reconnect');
      await seenWithin(api, rollout.id, 'after reconnect', 2_000);
    });
  }

  it('stops using its copy when Redis stops answering its PINGs, within the bound', async () => {
    const { api } = await start({ maxLagMs: 30 });
    const { rollout } = await startRollout({ ctx: api.domain.ctx, input: specFor('paused') });
    await get(api, rollout.id);
    expect(api.reads.stats.usable).toBe(true);
    // Every client's commands wait (CLIENT PAUSE ALL): no PING is answered, so no invalidation could arrive either.
    await admin.call('CLIENT', 'PAUSE', '400', 'ALL');
    await new Promise((r) => setTimeout(r, 100));
    expect(api.reads.stats.usable).toBe(false);
    // Once Redis answers again, so does the copy, and the GET is correct throughout.
    await eventually(async () => (api.reads.stats.usable ? true : undefined), 3_000, 10);
    expect((await get(api, rollout.id)).rollout.id).toBe(rollout.id);
  });

  it('keeps at most maxEntries documents, least recently read dropped first', async () => {
    const { api, other } = await start({ maxEntries: 3 });
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const { rollout } = await startRollout({ ctx: api.domain.ctx, input: specFor(`bound-${i}`) });
      ids.push(rollout.id);
      await get(api, rollout.id);
      expect(api.reads.stats.entries).toBeLessThanOrEqual(3);
    }
    expect(api.reads.stats.entries).toBe(3);
    // The dropped ones are still answered right: read from Redis, and kept again.
    await change(other, ids[0]!, 'dropped then changed');
    expect((await get(api, ids[0]!)).rollout.reason).toBe('dropped then changed');
    expect(api.reads.stats.entries).toBe(3);
  });

  it('answers 404 for an unknown rollout and keeps nothing for it', async () => {
    const { api } = await start();
    const res = await api.app.request('/api/v1/rollouts/nope');
    expect(res.status).toBe(404);
    expect(api.reads.stats.entries).toBe(0);
  });

  /** The id of the connection named `name` (CLIENT LIST). */
  async function clientId(name: string): Promise<number> {
    const list = (await admin.call('CLIENT', 'LIST')) as string;
    const line = list.split('\n').find((l) => l.includes(` name=${name} `));
    if (!line) throw new Error(`no connection named ${name}`);
    return Number(/\bid=(\d+)/.exec(line)![1]);
  }
});
