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

let redis: ManagedProcess;
let h: EngineHarness;
let kubeconfig: string;
const workers: (ChildProcess | undefined)[] = [];
const logs: string[] = [];

async function startWorker(i: number): Promise<void> {
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
  // running: it answers its health endpoint (its workers start right after the server listens)
  await eventually(
    async () =>
      (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.ok ? true : undefined,
    60_000,
    100,
  );
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
    for (let i = 0; i < 3; i++) await startWorker(i);
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
          },
          analysis: { guardInterval: '250ms', minRequests: 0 },
        }),
      });
      ids.push(rollout.id);
    }

    let kills = 0;
    let stop = false;
    const chaos = (async () => {
      while (!stop) {
        // a few seconds of work after the last restart was up, then the next kill
        await new Promise((r) => setTimeout(r, 1_500));
        if (stop) break;
        const i = kills % 3;
        await kill(i);
        kills++;
        await startWorker(i);
      }
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
      ended = await Promise.all(ids.map((id) => h.settle(id, 120_000)));
    } catch (e) {
      const states = await Promise.all(ids.map((id) => h.domain.ctx.store.get(id)));
      const jobs = await Promise.all(
        ids.map(async (id) => (await h.domain.ticks.queue.getJob(`tick-${id}`))?.getState()),
      );
      throw new Error(
        `${(e as Error).message}\n${states.map((r, i) => `${names[i]} ${r?.phase} ${r?.weights.canary}% job=${jobs[i]} ${r?.reason} ${r?.lastError ?? ''}`).join('\n')}\n${logs.slice(-30).join('')}`,
      );
    }
    stop = true;
    await Promise.all([chaos, aborts]);

    expect(kills).toBeGreaterThanOrEqual(3);
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
  }, 200_000);
});
