import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tick } from '../../src/rollouts/engine.ts';
import type { Rollout } from '../../src/rollouts/model.ts';
import { getRollout, sendCommand, startRollout } from '../../src/rollouts/verbs.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import {
  canarySpec,
  type EngineHarness,
  FakeSuccessRate,
  seedTarget,
  startEngineHarness,
} from '../helpers/engine.ts';
import { startTestRedis } from '../helpers/services.ts';

/**
 * The Redis round trips of one guard tick, counted on the connection: the lease and the read in one
 * script, the save, and the lease given back with the version compared — each script by its hash.
 */
let redis: ManagedProcess;
let h: EngineHarness;
const provider = new FakeSuccessRate();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  redis = await startTestRedis();
  h = await startEngineHarness({ redisUrl: redis.url, provider, noWorker: true });
});
afterAll(async () => {
  await h?.close();
  await redis?.stop();
});

const ctx = () => h.domain.ctx;
const get = (id: string) => getRollout({ ctx: ctx(), id });

/** Commands the domain's connection sends while `fn` runs, by name. */
async function counting<T>(fn: () => Promise<T>): Promise<{ result: T; sent: string[] }> {
  const conn = h.domain.redis;
  const sent: string[] = [];
  const original = conn.sendCommand.bind(conn);
  conn.sendCommand = ((cmd: { name: string }, ...rest: unknown[]) => {
    sent.push(cmd.name);
    return (original as (...a: unknown[]) => unknown)(cmd, ...rest);
  }) as typeof conn.sendCommand;
  try {
    return { result: await fn(), sent };
  } finally {
    conn.sendCommand = original;
  }
}

async function progressing(name: string): Promise<Rollout> {
  seedTarget(h.sim, name);
  const { rollout } = await startRollout({
    ctx: ctx(),
    input: canarySpec(name, { strategy: { type: 'canary', steps: [10, 50], stepInterval: '1h' } }),
  });
  for (let i = 0; i < 20; i++) {
    await tick(ctx(), rollout.id);
    const r = (await get(rollout.id))!;
    if (r.phase === 'progressing' && r.applied) return r;
  }
  throw new Error('the rollout did not reach its first step');
}

describe('Redis round trips of a guard tick', () => {
  it('a guard tick sends three commands, every script by its hash', async () => {
    const r = await progressing('rt-guard');
    // warm: Redis has seen every script once
    await sleep(300);
    await tick(ctx(), r.id);
    await sleep(300);
    const { result, sent } = await counting(() => tick(ctx(), r.id));
    expect(result.done).toBe(false);
    // lease + read, save, lease back + version
    expect(sent).toEqual(['evalsha', 'evalsha', 'evalsha']);
    const after = (await get(r.id))!;
    expect(after.version).toBe(r.version + 2);
    expect(after.lastAnalysis?.verdict).toBe('pass');
  });

  it('a command stored while a tick runs brings the next tick forward (the version compared, no document read)', async () => {
    const r = await progressing('rt-command');
    await sleep(300);
    const store = ctx().store;
    const update = store.update.bind(store);
    let sent = false;
    store.update = async (...args) => {
      const saved = await update(...args);
      if (!sent) {
        sent = true;
        // the operator's pause lands after the tick saved its guard check, before it gives the lease back
        await sendCommand({ ctx: ctx(), id: r.id, type: 'pause' });
      }
      return saved;
    };
    let out: Awaited<ReturnType<typeof tick>>;
    try {
      out = await tick(ctx(), r.id);
    } finally {
      store.update = update;
    }
    expect(out.done).toBe(false);
    if (out.done) return;
    // without the version check the next tick would be due a guard interval later
    expect(out.nextAt).toBeLessThanOrEqual(Date.now() + 60);
    await tick(ctx(), r.id);
    expect((await get(r.id))!.phase).toBe('paused');
  });

  it('a tick that finds the lease held reads nothing else', async () => {
    const r = await progressing('rt-held');
    await h.domain.redis.set(`${h.domain.prefix}:r:lease:${r.id}`, 'someone-else', 'PX', 5_000);
    const { result, sent } = await counting(() => tick(ctx(), r.id));
    expect(result.done).toBe(false);
    expect(sent).toEqual(['evalsha']);
    await h.domain.redis.del(`${h.domain.prefix}:r:lease:${r.id}`);
  });
});
