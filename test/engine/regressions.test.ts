import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.ts';
import { connectRedis } from '../../src/redis.ts';
import { sendCommand, startRollout } from '../../src/rollouts/verbs.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { startWorkers } from '../../src/workers/runtime.ts';
import { tickProcessor } from '../../src/workers/ticks.ts';
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

/**
 * Named reproductions of defects 1–3 of issue 11, each `it.fails` while its defect stood. The model
 * test (test/engine/model.test.ts) generates these cases too; the defects it found itself have
 * their named tests in test/engine/tick.test.ts (by the soak seed that found them).
 */
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

const vsOf = (name: string) => h.sim.getObject(VS, 'VirtualService', 'shop', name);
const drOf = (name: string) => h.sim.getObject(VS, 'DestinationRule', 'shop', name);
const phaseOf = async (id: string) => (await h.domain.ctx.store.get(id))?.phase;

describe('regressions of issue 11 (fixed defects)', () => {
  it('#1 an abort during a relabel promotion whose VirtualService write fails ends with the stable subset selecting the stable pods again', async () => {
    seedTarget(h.sim, 'relabel');
    const drBefore = drOf('relabel');
    const { rollout } = await startRollout({
      ctx: h.domain.ctx,
      input: canarySpec('relabel', {
        strategy: {
          type: 'canary',
          steps: [20, 50],
          stepInterval: '300ms',
          promotion: 'relabel',
          confirmPromotion: true,
        },
      }),
    });
    await eventually(async () => ((await phaseOf(rollout.id)) === 'awaiting-promotion' ? true : undefined));
    // The promotion relabels the DestinationRule, then cannot write the VirtualService.
    h.sim.setFaults([{ verb: 'update', resource: 'virtualservices', status: 500 }]);
    await sendCommand({ ctx: h.domain.ctx, id: rollout.id, type: 'promote', by: 'op' });
    await eventually(async () => {
      const stable = drOf('relabel').spec.subsets.find((s: { name: string }) => s.name === 'v1');
      const r = await h.domain.ctx.store.get(rollout.id);
      return stable.labels.version === 'v2' && r?.lastError ? true : undefined;
    });
    await sendCommand({ ctx: h.domain.ctx, id: rollout.id, type: 'abort', by: 'op', reason: 'stop it' });
    h.sim.clearFaults();
    const done = await h.settle(rollout.id);
    expect(done.phase).toBe('aborted');
    expect(canaryWeightOf(vsOf('relabel'))).toBeUndefined();
    // all traffic is on the stable subset: it must select the stable pods again
    expect(drOf('relabel').spec).toEqual(drBefore.spec);
  });

  it('#2 an abort restores a canary subset that existed before the rollout, labels and all', async () => {
    seedTarget(h.sim, 'presub');
    const dr = drOf('presub');
    dr.spec.subsets.push({ name: 'v2', labels: { app: 'presub', version: 'v2', track: 'old' } });
    h.sim.putObject(dr);
    const drBefore = drOf('presub');
    const { rollout } = await startRollout({ ctx: h.domain.ctx, input: canarySpec('presub') });
    await eventually(async () => ((canaryWeightOf(vsOf('presub')) ?? 0) >= 10 ? true : undefined));
    await sendCommand({ ctx: h.domain.ctx, id: rollout.id, type: 'abort', by: 'op' });
    const done = await h.settle(rollout.id);
    expect(done.phase).toBe('aborted');
    expect(drOf('presub').spec).toEqual(drBefore.spec);
  });

  it('#3 a rollout paused while pending can still be aborted, and ends', async () => {
    // A second engine with no worker yet, so the rollout stays pending while the commands arrive.
    const idle = await startEngineHarness({ redisUrl: redis.url, provider, noWorker: true });
    const blocking = connectRedis(redis.url, { role: 'worker' });
    let pool: ReturnType<typeof startWorkers> | undefined;
    try {
      seedTarget(idle.sim, 'pending');
      const { rollout } = await startRollout({ ctx: idle.domain.ctx, input: canarySpec('pending') });
      expect(await idle.domain.ctx.store.get(rollout.id)).toMatchObject({ phase: 'pending' });
      await sendCommand({ ctx: idle.domain.ctx, id: rollout.id, type: 'pause', by: 'op' });
      await sendCommand({ ctx: idle.domain.ctx, id: rollout.id, type: 'abort', by: 'op' });
      pool = startWorkers({
        connection: blocking,
        prefix: idle.domain.prefix,
        processors: [tickProcessor(idle.domain.ctx, 5)],
        logger: createLogger({ level: 'silent' }),
      });
      const done = await idle.settle(rollout.id, 10_000);
      expect(done.phase).toBe('aborted');
    } finally {
      await pool?.close();
      await blocking.quit();
      await idle.close();
    }
  });
});
