import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKubeRouters } from '../../src/mesh/kube-router.ts';
import { createWorkloadScaler } from '../../src/mesh/kube-workloads.ts';
import { connectRedis, type Redis } from '../../src/redis.ts';
import { AfterVerdictService } from '../../src/rollouts/after-verdict.ts';
import type { Rollout } from '../../src/rollouts/model.ts';
import { startRollout } from '../../src/rollouts/verbs.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { AfterQueue, afterVerdictProcessor } from '../../src/workers/after-verdict.ts';
import { startWorkers, type WorkerPool } from '../../src/workers/runtime.ts';
import { tickProcessor } from '../../src/workers/ticks.ts';
import { canarySpec, type EngineHarness, seedTarget, startEngineHarness } from '../helpers/engine.ts';
import { eventually, startTestRedis } from '../helpers/services.ts';

/** Undo when the cluster does not cooperate: every failure ends in a state that says so, and undo can be sent again. */
describe('undo failures (kube simulator with faults, real Redis)', () => {
  let redis: ManagedProcess;
  let h: EngineHarness;
  let blocking: Redis;
  let pool: WorkerPool;
  let queue: AfterQueue;

  const deployment = (name: string, replicas: number, ready: number) => {
    h.sim.putObject({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: 'shop' },
      spec: {
        replicas,
        selector: { matchLabels: { app: 'cart', version: name.slice(-2) } },
        template: {
          metadata: { labels: { app: 'cart', version: name.slice(-2) } },
          spec: { containers: [{ name: 'app', image: `cart:${name}` }] },
        },
      },
    });
    setReady(name, replicas, ready);
  };
  const setReady = (name: string, replicas: number, ready: number) =>
    h.sim.setDeploymentStatus('shop', name, {
      observedGeneration: h.sim.getObject('apps/v1', 'Deployment', 'shop', name).metadata.generation ?? 1,
      replicas,
      readyReplicas: ready,
      updatedReplicas: ready,
      availableReplicas: ready,
    });

  beforeAll(async () => {
    redis = await startTestRedis();
    h = await startEngineHarness({ redisUrl: redis.url, noWorker: true });
    const kubeConfig = h.sim.kubeConfig();
    const routers = createKubeRouters({ kubeConfig, timeoutMs: 2_000, backoffMs: 20, maxRetries: 0 });
    const scaler = createWorkloadScaler({ kubeConfig, timeoutMs: 2_000, maxRetries: 0 });
    queue = new AfterQueue(h.domain.redis, h.domain.prefix, { attempts: 2, backoffMs: 100 });
    h.domain.ctx.after = new AfterVerdictService({
      redis: h.domain.redis,
      prefix: h.domain.prefix,
      scheduler: queue,
      readyTimeoutMs: 1_500,
      pollMs: 100,
      cluster: (c) => {
        const r = routers(c);
        return {
          scaler,
          stableLabels: (t) => r.stableLabels(t),
          undoPromotion: (t, m, l) => r.undoPromotion(t, m, l),
        };
      },
    });
    blocking = connectRedis(redis.url, { role: 'worker' });
    pool = startWorkers({
      connection: blocking,
      prefix: h.domain.prefix,
      processors: [tickProcessor(h.domain.ctx, 5), afterVerdictProcessor(h.domain.ctx)],
      logger: h.domain.ctx.logger,
    });
  });
  afterAll(async () => {
    await pool?.close();
    await queue?.close();
    await blocking?.quit();
    await h?.close();
    await redis?.stop();
  });

  const afterState = (id: string, state: string) =>
    eventually(async () => {
      const r = await h.domain.ctx.store.get(id);
      return r?.after?.state === state ? r : undefined;
    }, 20_000);

  it('a scale-up that keeps failing, then one that never gets ready, end undo-failed; the third undo works', async () => {
    seedTarget(h.sim, 'cart');
    deployment('cart-v1', 3, 3);
    const { rollout } = await startRollout({
      ctx: h.domain.ctx,
      input: canarySpec('cart', {
        stable: { subset: 'v1', workload: { name: 'cart-v1' } },
        strategy: { type: 'canary', steps: [50], stepInterval: '500ms', scaleDownDelay: 0 },
        analysis: { guardInterval: '250ms', minRequests: 0 },
      }),
    });
    expect((await h.settle(rollout.id)).phase).toBe('succeeded');
    await afterState(rollout.id, 'scaled-down');
    expect(h.sim.getObject('apps/v1', 'Deployment', 'shop', 'cart-v1').spec.replicas).toBe(0);
    setReady('cart-v1', 0, 0);
    const vs = () => h.sim.getObject('networking.istio.io/v1', 'VirtualService', 'shop', 'cart');

    // 1. The scale subresource answers 500 to every try: the job gives up, the rollout says why.
    h.sim.setFaults([{ verb: 'patch', resource: 'deployments', status: 500 }]);
    await h.domain.ctx.after!.requestUndo(h.domain.ctx, { id: rollout.id, by: 'oncall' });
    let r: Rollout = await afterState(rollout.id, 'undo-failed');
    expect(r.after?.message).toMatch(/Deployment shop\/cart-v1 scale: API server error 500/);
    expect(vs().spec.http[1].route).toEqual([{ destination: { host: 'cart', subset: 'v2' }, weight: 100 }]);
    h.sim.clearFaults();

    // 2. Scaled up, but its pods never get ready: bounded wait, traffic stays where it was.
    await h.domain.ctx.after!.requestUndo(h.domain.ctx, { id: rollout.id, by: 'oncall' });
    r = await afterState(rollout.id, 'undo-failed');
    expect(r.after?.message).toMatch(/old version Deployment shop\/cart-v1 not ready after 1500ms/);
    expect(h.sim.getObject('apps/v1', 'Deployment', 'shop', 'cart-v1').spec.replicas).toBe(3);
    expect(vs().spec.http[1].route).toEqual([{ destination: { host: 'cart', subset: 'v2' }, weight: 100 }]);

    // 3. Ready now: undo routes back.
    setReady('cart-v1', 3, 3);
    await h.domain.ctx.after!.requestUndo(h.domain.ctx, { id: rollout.id, by: 'oncall' });
    await afterState(rollout.id, 'undone');
    expect(vs().spec.http[1].route).toEqual([{ destination: { host: 'cart', subset: 'v1' }, weight: 100 }]);
    const events = (await h.domain.ctx.store.events(rollout.id)).map((e) => `${e.type}: ${e.reason}`);
    expect(events.filter((e) => e.startsWith('undo: undo failed'))).toHaveLength(2);
    expect(events.at(-1)).toMatch(/^undo: 100% back to subset 'v1'/);
  });
});
