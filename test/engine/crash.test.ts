import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendCommand, startRollout } from '../../src/rollouts/verbs.ts';
import { freePort, type ManagedProcess } from '../../src/sandbox/processes.ts';
import {
  canarySpec,
  canaryWeightOf,
  type EngineHarness,
  seedTarget,
  startEngineHarness,
  VS,
} from '../helpers/engine.ts';
import { eventually, startTestRedis } from '../helpers/services.ts';

const VANE = join(import.meta.dirname, '../../bin/vane.mjs');
const ROLLOUTS = 20;
const ABORTED = new Set([3, 8, 13, 18]);
/**
 * Kills, 1.5 s apart (or as soon as two workers are up again). The rollouts that are not aborted
 * wait at awaiting-promotion (confirmPromotion) until the kills are done, so every kill lands while
 * they are active, however slow the machine; the first lands once rollouts are stepping.
 */
const KILLS = 3;
/** A worker process's start (node, tsx compiling the sources, Redis) took 30 s and more on a loaded 2-core machine. */
const START_BUDGET_MS = 150_000;

let redis: ManagedProcess;
let h: EngineHarness;
let kubeconfig: string;
const workers: (ChildProcess | undefined)[] = [];
const logs: string[] = [];

/**
 * Starts worker process i and waits until it serves /healthz. The port is chosen free but only
 * bound by the child seconds later, so another process may take it meanwhile: a child that exits
 * while starting is started again on another port instead of being waited for in vain.
 */
async function startWorker(i: number): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      REDIS_URL: redis.url,
      KUBECONFIG: kubeconfig,
      VANE_KEY_PREFIX: h.domain.prefix,
      PORT: String(await freePort()),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      LOG_FORMAT: 'json',
      VANE_WORKER_CONCURRENCY: '20',
    };
    delete env.PROMETHEUS_URL;
    const child = spawn('node', [VANE, 'worker'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const port = env.PORT;
    child.stdout!.on('data', (d) => logs.push(`[w${i}] ${d}`));
    child.stderr!.on('data', (d) => logs.push(`[w${i}] ${d}`));
    workers[i] = child;
    const up = await eventually(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) return 'exited';
        const res = await fetch(`http://127.0.0.1:${port}/healthz`, {
          signal: AbortSignal.timeout(2_000),
        }).catch(() => undefined);
        return res?.ok ? 'up' : undefined;
      },
      START_BUDGET_MS,
      100,
    );
    if (up === 'up') return;
    if (attempt >= 3)
      throw new Error(`worker ${i} exited while starting, 3 times:\n${logs.slice(-20).join('')}`);
  }
}

function kill(i: number): Promise<void> {
  const child = workers[i];
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

beforeAll(async () => {
  redis = await startTestRedis();
  h = await startEngineHarness({ redisUrl: redis.url, noWorker: true });
  const dir = mkdtempSync(join(tmpdir(), 'vane-crash-'));
  kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, h.sim.kubeconfigYaml());
});
afterAll(async () => {
  await Promise.all(workers.map((_, i) => kill(i)));
  await h?.close();
  await redis?.stop();
});

describe('crash safety', () => {
  it('20 rollouts through 3 worker processes, one SIGKILLed every few seconds: all end as expected, no step skipped or repeated', async () => {
    await Promise.all([0, 1, 2].map((i) => startWorker(i)));
    const names = Array.from({ length: ROLLOUTS }, (_, i) => `crash-${i}`);
    for (const n of names) seedTarget(h.sim, n);
    const ids: string[] = [];
    for (const [i, n] of names.entries()) {
      const { rollout } = await startRollout({
        ctx: h.domain.ctx,
        input: canarySpec(n, {
          // the ones to abort step slowly, so the abort lands mid-way
          strategy: {
            type: 'canary',
            steps: [10, 20, 30, 40, 50],
            stepInterval: ABORTED.has(i) ? '4s' : '2s',
            // held at max weight until the kills are done: no rollout can end before a kill
            confirmPromotion: !ABORTED.has(i),
          },
          analysis: { guardInterval: '250ms', minRequests: 0 },
        }),
      });
      ids.push(rollout.id);
    }

    const phases = async () =>
      (await Promise.all(ids.map((id) => h.domain.ctx.store.get(id)))).map((r) => r?.phase);
    // What each kill found: how many rollouts were active, and how many were still stepping.
    const atKill: { active: number; stepping: number; phases: string }[] = [];
    const t0 = Date.now();
    const isUp = (i: number) => up.has(i);
    const up = new Set([0, 1, 2]);
    const restarts: Promise<void>[] = [];
    /** Kills worker i and starts it again in the background; kills only while another worker is up. */
    const killAndRestart = async (i: number) => {
      up.delete(i);
      await kill(i);
      restarts.push(startWorker(i).then(() => void up.add(i)));
    };
    const chaos = (async () => {
      // the first kill once rollouts are stepping
      await eventually(async () => ((await phases()).includes('progressing') ? true : undefined), 60_000, 50);
      for (let k = 0; k < KILLS; k++) {
        // a little work since the last kill, and another worker up to take over
        await new Promise((r) => setTimeout(r, 1_500));
        await eventually(
          async () => ([0, 1, 2].filter(isUp).length >= 2 ? true : undefined),
          START_BUDGET_MS,
          100,
        );
        const now = await phases();
        atKill.push({
          active: now.filter((p) => p && !['succeeded', 'failed', 'aborted'].includes(p)).length,
          stepping: now.filter((p) => p === 'progressing').length,
          phases: `${((Date.now() - t0) / 1000).toFixed(1)}s ${now.join(',')}`,
        });
        await killAndRestart([0, 1, 2].find(isUp)!);
      }
      // The kills are done: let the held rollouts promote.
      const held = ids.filter((_, i) => !ABORTED.has(i));
      await Promise.all(
        held.map(async (id) => {
          await eventually(
            async () =>
              (await h.domain.ctx.store.get(id))?.phase === 'awaiting-promotion' ? true : undefined,
            90_000,
            100,
          );
          await sendCommand({ ctx: h.domain.ctx, id, type: 'promote', by: 'chaos-test' });
        }),
      );
      // One more kill while they promote (best effort: some may have ended already).
      const spare = [0, 1, 2].filter(isUp);
      if (spare.length >= 2) await killAndRestart(spare[0]!);
      await Promise.all(restarts);
    })();
    // Abort some once they are under way.
    const aborts = Promise.all(
      [...ABORTED].map(async (i) => {
        await eventually(
          async () =>
            (canaryWeightOf(h.sim.getObject(VS, 'VirtualService', 'shop', names[i]!)) ?? 0) >= 20
              ? true
              : undefined,
          60_000,
          50,
        );
        await sendCommand({ ctx: h.domain.ctx, id: ids[i]!, type: 'abort', by: 'chaos-test' });
      }),
    );

    let ended: Awaited<ReturnType<typeof h.settle>>[];
    try {
      // a failed chaos (a worker that never came up) fails the test now, not after every settle times out
      ended = await Promise.race([
        Promise.all(ids.map((id) => h.settle(id, 150_000))),
        chaos.then(() => new Promise<never>(() => {})),
      ]);
    } catch (e) {
      const states = await Promise.all(ids.map((id) => h.domain.ctx.store.get(id)));
      const jobs = await Promise.all(
        ids.map(async (id) => {
          const s = await h.domain.ticks.state(id);
          return s.scheduled ? `due in ${s.dueAt - Date.now()} ms` : 'none';
        }),
      );
      throw new Error(
        `${(e as Error).message}\n${states.map((r, i) => `${names[i]} ${r?.phase} ${r?.weights.canary}% job=${jobs[i]} ${r?.reason} ${r?.lastError ?? ''}`).join('\n')}\n${logs.slice(-30).join('')}`,
      );
    }
    await Promise.all([chaos, aborts]);

    // every kill landed while rollouts were active: the 16 held ones at least
    expect(atKill).toHaveLength(KILLS);
    for (const k of atKill) expect(k.active).toBeGreaterThanOrEqual(ROLLOUTS - ABORTED.size);
    // and the first while they were stepping
    expect(atKill[0]!.stepping, JSON.stringify(atKill)).toBeGreaterThan(0);
    ended.forEach((r, i) => {
      expect(r.phase, `${names[i]}: ${r.reason}\n${logs.slice(-20).join('')}`).toBe(
        ABORTED.has(i) ? 'aborted' : 'succeeded',
      );
    });
    for (const [i, n] of names.entries()) {
      const weights = h.weightWrites(n).filter((w) => w !== undefined);
      if (ABORTED.has(i)) {
        // the steps taken, each once and in order, then back to stable
        const steps = weights.filter((w) => w !== 100);
        expect(steps).toEqual([10, 20, 30, 40, 50].slice(0, steps.length));
        expect(canaryWeightOf(h.sim.getObject(VS, 'VirtualService', 'shop', n))).toBeUndefined();
      } else {
        expect(weights, n).toEqual([10, 20, 30, 40, 50, 100, 100]);
      }
    }
  }, 300_000);
});
