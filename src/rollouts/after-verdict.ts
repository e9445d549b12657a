import { randomUUID } from 'node:crypto';
import { formatDuration } from '../duration.ts';
import type { WorkloadScaler } from '../mesh/kube-workloads.ts';
import { MeshError, type MeshTarget, type PromotionMode } from '../mesh/types.ts';
import type { Redis } from '../redis.ts';
import type { AfterVerdictHooks, DomainContext } from './context.ts';
import { meshTarget } from './engine.ts';
import { RolloutError } from './errors.ts';
import type { AfterVerdict, Rollout, RolloutEvent } from './model.ts';
import { commandRefusal } from './phases.ts';

/**
 * After the verdict: the old version's Deployment is scaled to 0 once `strategy.scaleDownDelay`
 * has passed (its replicas remembered), the canary's after a rollback when `scaleDownOnFailure`,
 * and `undo` sends a succeeded rollout's traffic back to the old version (scaling it up first when
 * it was scaled down). Scale-downs and undos are queue jobs (AfterScheduler), not timers, so they
 * survive restarts; each job takes a per-rollout lock, so a scale-down and an undo never interleave.
 */

/** The queue side (src/workers/after-verdict.ts). Job ids are deterministic: one scale-down and one undo per rollout. */
export interface AfterScheduler {
  scaleDownLater(rolloutId: string, delayMs: number): Promise<void>;
  cancelScaleDown(rolloutId: string): Promise<void>;
  undoNow(rolloutId: string): Promise<void>;
  /** Whether an undo job of the rollout waits or runs. */
  undoQueued(rolloutId: string): Promise<boolean>;
}

/** The cluster side: the Kubernetes adapter (src/mesh/kube-router.ts, src/mesh/kube-workloads.ts). */
export interface AfterCluster {
  scaler: WorkloadScaler;
  stableLabels(target: MeshTarget): Promise<Record<string, string> | undefined>;
  undoPromotion(
    target: MeshTarget,
    mode: PromotionMode,
    stableLabels?: Record<string, string>,
  ): Promise<void>;
}

export interface AfterVerdictOptions {
  redis: Redis;
  prefix: string;
  scheduler: AfterScheduler;
  cluster: (cluster?: string) => AfterCluster;
  /** Longest wait for the scaled-up old version to be ready before undo routes to it. Default 5m (at most the spec's workloadReady deadline). */
  readyTimeoutMs?: number;
  /** How often readiness is read while waiting. Default 500 ms. */
  pollMs?: number;
}

/** A job that cannot run now (another holds the rollout's lock): BullMQ retries it with a backoff. */
export class AfterBusy extends Error {}

const LABELS_TTL_S = 30 * 24 * 3600;
/** The per-rollout lock of a scale-down or undo job, renewed every third of it while the job runs. */
const LOCK_MS = 9_000;

export class AfterVerdictService implements AfterVerdictHooks {
  private readonly readyTimeoutMs: number;
  private readonly pollMs: number;
  constructor(private readonly o: AfterVerdictOptions) {
    this.readyTimeoutMs = o.readyTimeoutMs ?? 300_000;
    this.pollMs = o.pollMs ?? 500;
  }

  private key(...parts: string[]): string {
    return [this.o.prefix, 'after', ...parts].join(':');
  }

  /**
   * Called by the engine right before a promotion is written: with `relabel` the stable subset's
   * labels are about to change, so the old ones are kept (first call wins; a retried promotion
   * would read the new ones) for undo.
   */
  async beforePromote(_ctx: DomainContext, r: Rollout): Promise<void> {
    if (r.spec.strategy.promotion !== 'relabel' || !r.spec.stable.workload) return;
    const k = this.key('stable-labels', r.id);
    if (await this.o.redis.exists(k)) return;
    const labels = await this.o.cluster(r.spec.target.cluster).stableLabels(meshTarget(r));
    if (labels) await this.o.redis.set(k, JSON.stringify(labels), 'EX', LABELS_TTL_S, 'NX');
  }

  /**
   * Called by the engine once a terminal phase is saved. Schedules what comes after; never throws
   * (the verdict is already written; a failure here is logged and the rollout says so).
   */
  async ended(ctx: DomainContext, id: string): Promise<void> {
    try {
      const r = await ctx.store.get(id);
      if (!r || r.after) return;
      const plan = planAfter(r);
      if (!plan) return;
      await this.save(ctx, id, (x) => (x.after ? undefined : { after: plan.after, events: [plan.event] }));
      if (plan.after.state === 'scheduled')
        await this.o.scheduler.scaleDownLater(id, Math.max(0, (plan.after.scaleDownAt ?? 0) - Date.now()));
    } catch (e) {
      ctx.logger.warn(
        { rollout: id, err: (e as Error).message },
        'could not schedule what follows the verdict',
      );
    }
  }

  /** The API's and the CLI's verb: checks the command table and the target, records the undo, queues it. */
  async requestUndo(
    ctx: DomainContext,
    { id, by, reason }: { id: string; by?: string; reason?: string },
  ): Promise<Rollout> {
    const current = await ctx.store.get(id);
    if (!current) throw new RolloutError('NOT_FOUND', `no rollout with id '${id}'`);
    // An undo recorded whose job was lost (Redis failed between the two writes): queue it again.
    if (current.after?.state === 'undoing' && !(await this.o.scheduler.undoQueued(id))) {
      await this.o.scheduler.undoNow(id);
      return current;
    }
    const holder = await ctx.store.targetHolder(current);
    if (holder && holder !== id) {
      throw new RolloutError(
        'CONFLICT',
        `cannot undo rollout ${id}: rollout ${holder} now holds its target; abort that one first`,
      );
    }
    // Undo takes back the last change of a target only: a later rollout there changed it again.
    const t = current.spec.target;
    const newer = (await ctx.store.list({ namespace: t.namespace, limit: 500 })).find(
      (x) =>
        x.id !== id &&
        x.createdAt > current.createdAt &&
        x.spec.target.virtualService === t.virtualService &&
        (x.spec.target.cluster ?? '') === (t.cluster ?? ''),
    );
    if (newer) {
      throw new RolloutError(
        'CONFLICT',
        `cannot undo rollout ${id}: rollout ${newer.id} (${newer.phase}) ran on ${t.namespace}/${t.virtualService} since; only the latest rollout of a target can be undone`,
      );
    }
    const who = by ? ` by ${by}` : '';
    const updated = await this.save(ctx, id, (r) => {
      const refusal = commandRefusal(r, 'undo');
      if (refusal) throw new RolloutError('CONFLICT', `cannot undo rollout ${id}: ${refusal}`);
      return {
        after: {
          ...(r.after ?? { state: 'kept' }),
          state: 'undoing',
          ...(by ? { undoneBy: by } : {}),
          message: undefined,
        },
        events: [
          { type: 'command', reason: `undo${who}${reason ? `: ${reason}` : ''}`, ...(by ? { by } : {}) },
        ],
      };
    });
    await this.o.scheduler.cancelScaleDown(id);
    await this.o.scheduler.undoNow(id);
    return updated;
  }

  /** The scale-down job: remember the replicas, scale to 0, record it. A later undo scales it back. */
  async runScaleDown(ctx: DomainContext, id: string): Promise<void> {
    await this.locked(id, async () => {
      const r = await ctx.store.get(id);
      if (!r) return;
      if (r.after?.state !== 'scheduled') return;
      const w = scaleTarget(r);
      if (!w) return;
      const t = r.spec.target;
      const scaler = this.o.cluster(t.cluster).scaler;
      const why = r.phase === 'succeeded' ? 'old-version' : 'canary-failed';
      try {
        const now = await scaler.readReplicas(t.namespace, w.name, t.cluster);
        if (r.after.replicas === undefined && now.replicas > 0) {
          const saved = await this.save(ctx, id, (x) =>
            x.after?.state === 'scheduled' ? { after: { ...x.after, replicas: now.replicas } } : undefined,
          );
          // An undo came in meanwhile: it keeps the old version running.
          if (saved.after?.state !== 'scheduled') return;
        }
        await scaler.scale(t.namespace, w.name, 0, t.cluster);
        ctx.recorder.workloadScaled(why, 'ok');
      } catch (e) {
        ctx.recorder.workloadScaled(why, 'error');
        if (e instanceof MeshError && !e.retryable) {
          await this.save(ctx, id, (x) => ({
            after: { ...(x.after ?? { state: 'kept' }), state: 'kept', message: e.message },
            events: [{ type: 'scale', reason: `${w.label} was not scaled down: ${e.message}` }],
          }));
          return;
        }
        throw e;
      }
      await this.save(ctx, id, (x) => ({
        after: {
          ...(x.after ?? { state: 'scaled-down' }),
          // An undo queued meanwhile stays the state: it scales the workload up again.
          state: x.after?.state === 'scheduled' ? 'scaled-down' : (x.after?.state ?? 'scaled-down'),
          scaledDownAt: Date.now(),
        },
        events: [
          {
            type: 'scale',
            reason: `${w.label} scaled to 0 (had ${x.after?.replicas ?? 0} replicas)${r.phase === 'succeeded' ? '; undo scales it up again' : ''}`,
          },
        ],
      }));
    });
  }

  /** The undo job: scale the old version up when it was scaled down, wait until ready, then route 100% back to it. */
  async runUndo(ctx: DomainContext, id: string): Promise<void> {
    await this.locked(id, async () => {
      const r = await ctx.store.get(id);
      if (!r) return;
      if (r.after?.state !== 'undoing') return;
      const w = r.spec.stable.workload;
      if (!w) return;
      const t = r.spec.target;
      const c = this.o.cluster(t.cluster);
      const label = `old version Deployment ${t.namespace}/${w.name}`;
      const fail = (message: string) =>
        this.save(ctx, id, (x) => ({
          after: { ...(x.after ?? { state: 'undo-failed' }), state: 'undo-failed', message },
          events: [{ type: 'undo', reason: `undo failed: ${message}; traffic stays on the new version` }],
        }));
      try {
        let now = await c.scaler.readReplicas(t.namespace, w.name, t.cluster);
        if (now.replicas === 0) {
          const replicas = Math.max(1, r.after.replicas ?? 1);
          await c.scaler.scale(t.namespace, w.name, replicas, t.cluster);
          ctx.recorder.workloadScaled('undo', 'ok');
          await this.save(ctx, id, () => ({
            events: [{ type: 'scale', reason: `${label} scaled up to ${replicas} replicas for undo` }],
          }));
        }
        const limit = Math.min(this.readyTimeoutMs, r.spec.analysis.deadlines.workloadReady);
        const until = Date.now() + limit;
        now = await c.scaler.readReplicas(t.namespace, w.name, t.cluster);
        while (!now.ready) {
          if (Date.now() >= until) {
            await fail(`${label} not ready after ${formatDuration(limit)} (${now.message ?? 'not ready'})`);
            return;
          }
          await new Promise((res) => setTimeout(res, this.pollMs));
          now = await c.scaler.readReplicas(t.namespace, w.name, t.cluster);
        }
        const labels =
          r.spec.strategy.promotion === 'relabel'
            ? ((await this.o.redis.get(this.key('stable-labels', id))) ?? undefined)
            : undefined;
        await c.undoPromotion(
          meshTarget(r),
          r.spec.strategy.promotion,
          labels ? (JSON.parse(labels) as Record<string, string>) : undefined,
        );
      } catch (e) {
        if (e instanceof MeshError && !e.retryable) {
          await fail(e.message);
          return;
        }
        throw e;
      }
      const what =
        r.spec.strategy.promotion === 'relabel'
          ? `subset '${r.spec.stable.subset}' selects the old version's pods again`
          : `100% back to subset '${r.spec.stable.subset}'`;
      await this.save(ctx, id, (x) => ({
        weights: { stable: 100, canary: 0 },
        after: {
          ...(x.after ?? { state: 'undone' }),
          state: 'undone',
          undoneAt: Date.now(),
          message: undefined,
        },
        events: [
          { type: 'weight', reason: `undone: ${what}`, weights: { stable: 100, canary: 0 } },
          {
            type: 'undo',
            reason: `${what} (${label})`,
            ...(x.after?.undoneBy ? { by: x.after.undoneBy } : {}),
          },
        ],
      }));
    });
  }

  /**
   * A job ran out of retries (the API server unreachable for minutes): the rollout says so, and an
   * undo can be sent again. A scale-down given up leaves the workload running (`kept`).
   */
  async gaveUp(ctx: DomainContext, kind: 'scale-down' | 'undo', id: string, message: string): Promise<void> {
    await this.save(ctx, id, (x) => {
      const want = kind === 'undo' ? 'undoing' : 'scheduled';
      if (x.after?.state !== want) return undefined;
      return kind === 'undo'
        ? {
            after: { ...x.after, state: 'undo-failed', message },
            events: [{ type: 'undo', reason: `undo failed: ${message}; traffic stays on the new version` }],
          }
        : {
            after: { ...x.after, state: 'kept', message },
            events: [
              {
                type: 'scale',
                reason: `${x.after.workload ?? 'the workload'} was not scaled down: ${message}`,
              },
            ],
          };
    });
  }

  /**
   * One job at a time per rollout (scale-down or undo). The lock is short and renewed while the job
   * runs, so one held by a killed worker frees itself within LOCK_MS and the job's retry goes on.
   */
  private async locked(id: string, run: () => Promise<void>): Promise<void> {
    const k = this.key('lock', id);
    const token = randomUUID();
    const ok = await this.o.redis.set(k, token, 'PX', LOCK_MS, 'NX');
    if (!ok) throw new AfterBusy(`rollout ${id}: another scale-down or undo runs; trying again`);
    const renew = setInterval(() => {
      void this.o.redis
        .eval(
          "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0",
          1,
          k,
          token,
          LOCK_MS,
        )
        .catch(() => {});
    }, LOCK_MS / 3);
    renew.unref();
    try {
      await run();
    } finally {
      clearInterval(renew);
      await this.o.redis
        .eval(
          "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
          1,
          k,
          token,
        )
        .catch(() => {});
    }
  }

  /** Compare-and-set of `after` (and weights) with events; the events go to every listener (notifications, Kubernetes Events). */
  private async save(
    ctx: DomainContext,
    id: string,
    change: (
      r: Rollout,
    ) =>
      | { after?: AfterVerdict; weights?: Rollout['weights']; events?: Omit<RolloutEvent, 'time'>[] }
      | undefined,
  ): Promise<Rollout> {
    let events: RolloutEvent[] = [];
    const saved = await ctx.store.mutate(id, (r) => {
      const out = change(r);
      if (!out) return undefined;
      const now = ctx.now();
      events = (out.events ?? []).map((e) => ({ time: now, ...e }));
      return {
        next: {
          ...r,
          ...(out.after ? { after: out.after } : {}),
          ...(out.weights ? { weights: out.weights } : {}),
          updatedAt: now,
        },
        events,
      };
    });
    if (!saved) throw new RolloutError('NOT_FOUND', `no rollout with id '${id}'`);
    if (events.length) ctx.onEvents?.(saved, events);
    return saved;
  }
}

/** Which workload a scale-down job scales: the old version after success, the canary after a rollback. */
function scaleTarget(r: Rollout): { name: string; label: string } | undefined {
  const ns = r.spec.target.namespace;
  if (r.phase === 'succeeded' && r.spec.stable.workload) {
    return {
      name: r.spec.stable.workload.name,
      label: `old version Deployment ${ns}/${r.spec.stable.workload.name}`,
    };
  }
  if ((r.phase === 'failed' || r.phase === 'aborted') && r.spec.canary.workload) {
    return {
      name: r.spec.canary.workload.name,
      label: `canary Deployment ${ns}/${r.spec.canary.workload.name}`,
    };
  }
  return undefined;
}

/** What follows a verdict, from the spec alone (pure). */
export function planAfter(
  r: Rollout,
  now = Date.now(),
): { after: AfterVerdict; event: Omit<RolloutEvent, 'time'> } | undefined {
  const ns = r.spec.target.namespace;
  if (r.phase === 'succeeded') {
    const w = r.spec.stable.workload;
    if (!w) return undefined;
    const workload = `Deployment ${ns}/${w.name}`;
    const delay = r.spec.strategy.scaleDownDelay;
    if (delay === 'never') {
      return {
        after: { state: 'kept', workload },
        event: {
          type: 'scale',
          reason: `old version ${workload} keeps running (scaleDownDelay: never); undo applies`,
        },
      };
    }
    const at = now + delay;
    return {
      after: { state: 'scheduled', workload, scaleDownAt: at },
      event: {
        type: 'scale',
        reason: `old version ${workload} will be scaled to 0 at ${new Date(at).toISOString()} (in ${formatDuration(delay)}); undo until then is instant`,
      },
    };
  }
  if ((r.phase === 'failed' || r.phase === 'aborted') && r.spec.canary.workload) {
    const workload = `Deployment ${ns}/${r.spec.canary.workload.name}`;
    if (!r.spec.canary.scaleDownOnFailure) return undefined;
    return {
      after: { state: 'scheduled', workload, scaleDownAt: now },
      event: { type: 'scale', reason: `canary ${workload} will be scaled to 0 (scaleDownOnFailure)` },
    };
  }
  return undefined;
}
