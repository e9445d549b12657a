import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { formatDuration } from '../duration.ts';
import { MeshError, type MeshTarget, type TrafficRouter, type Weights } from '../mesh/types.ts';
import type { AnalysisReport } from '../metrics/types.ts';
import {
  analysisNeed,
  decide,
  initialProgress,
  type Observation,
  type StageTraffic,
  stagesOf,
  type Timing,
} from '../strategies/index.ts';
import type { DomainContext, GateName } from './context.ts';
import { LeaseLost, VersionConflict } from './errors.ts';
import type { Command, Rollout, RolloutEvent } from './model.ts';
import { canTransition, commandRefusal, isTerminal, type Phase } from './phases.ts';

/** What the scheduler does after a tick; `backoff`: the tick failed and nextAt is its backoff. */
export type TickOutcome = { done: true } | { done: false; nextAt: number; backoff?: boolean };

/** How long a worker holds a rollout's lease; renewed while the tick runs, checked before every cluster write. */
export const TICK_LEASE_MS = 6_000;
const LEASE_MS = TICK_LEASE_MS;
/** How often a paused rollout is looked at (commands wake it at once anyway). */
const IDLE_MS = 15_000;

export function meshTarget(r: Rollout): MeshTarget {
  const t = r.spec.target;
  return {
    namespace: t.namespace,
    virtualService: t.virtualService,
    destinationRule: t.destinationRule,
    ...(t.routes ? { routes: t.routes } : {}),
    ...(t.host ? { host: t.host } : {}),
    ...(t.cluster ? { cluster: t.cluster } : {}),
    stableSubset: r.spec.stable.subset,
    canarySubset: r.spec.canary.subset,
    canaryLabels: r.spec.canary.labels,
  };
}

export function timingOf(r: Rollout): Timing {
  const a = r.spec.analysis;
  return {
    stepIntervalMs: r.spec.strategy.stepInterval,
    guardIntervalMs: a.guardInterval,
    failureThreshold: a.failureThreshold,
    inconclusiveDeadlineMs: a.deadlines.inconclusive,
    promotionGate:
      r.spec.strategy.confirmPromotion || r.spec.webhooks.some((w) => w.type === 'confirm-promotion'),
    gateDeadlineMs: a.deadlines.gate,
  };
}

function weightsOf(traffic: StageTraffic): Weights {
  return { stable: 100 - traffic.canaryWeight, canary: traffic.canaryWeight };
}

/** A rollout being changed within one tick: the next state and the events that explain it. */
class Change {
  events: RolloutEvent[] = [];
  /** Used-once keys (approvals, gate answers) deleted in the same atomic step that saves this change. */
  consume: string[] = [];
  constructor(
    public r: Rollout,
    private readonly now: number,
  ) {}

  transition(to: Phase, reason: string, extra: Partial<Rollout> = {}, results?: AnalysisReport): void {
    const from = this.r.phase;
    if (!canTransition(from, to)) throw new Error(`bug: transition ${from} → ${to} is not allowed`);
    this.r = {
      ...this.r,
      ...extra,
      phase: to,
      reason,
      phaseStartedAt: this.now,
      ...(isTerminal(to) ? { endedAt: this.now } : {}),
    };
    this.events.push({
      time: this.now,
      type: 'transition',
      from,
      to,
      reason,
      weights: this.r.weights,
      ...(results ? { results: results.results, verdict: results.verdict } : {}),
    });
  }

  event(e: Omit<RolloutEvent, 'time'>): void {
    this.events.push({ time: this.now, ...e });
  }
}

/**
 * The lease a tick holds on its rollout: renewed every third of its time while the tick runs, and
 * checked (and renewed) right before every cluster write. Once lost, every later write throws
 * LeaseLost, so a stale tick never writes over the one that took the rollout over.
 */
class Lease {
  private lost = false;
  private readonly timer: NodeJS.Timeout;
  constructor(
    private readonly ctx: DomainContext,
    private readonly id: string,
    private readonly token: string,
  ) {
    this.timer = setInterval(() => void this.renew().catch(() => {}), LEASE_MS / 3);
    this.timer.unref();
  }

  private async renew(): Promise<boolean> {
    if (!this.lost && !(await this.ctx.store.renewLease(this.id, this.token, LEASE_MS))) this.lost = true;
    return !this.lost;
  }

  readonly fence = async (): Promise<void> => {
    if (!(await this.renew())) throw new LeaseLost(this.id);
  };

  stop(): void {
    clearInterval(this.timer);
  }
}

/** The router with the tick's fence on every target, so each write checks the lease first. */
function fencedRouter(r: TrafficRouter, fence: () => Promise<void>): TrafficRouter {
  const f = (t: MeshTarget): MeshTarget => ({ ...t, fence });
  return {
    snapshot: (t, id) => r.snapshot(f(t), id),
    ensureCanarySubset: (t) => r.ensureCanarySubset(f(t)),
    readWeights: (t) => r.readWeights(f(t)),
    setWeights: (t, w) => r.setWeights(f(t), w),
    setExperiment: (t, e) => r.setExperiment(f(t), e),
    setMirror: (t, m) => r.setMirror(f(t), m),
    promote: (t, m) => r.promote(f(t), m),
    rollback: (t, o) => r.rollback(f(t), o),
    release: (t) => r.release(f(t)),
  };
}

/** A guard tick's save held back to be written with the tick's end (see runClaimedTick): the version it was decided on, and the document. */
export interface DeferredSave {
  version: number;
  doc: string;
}

/** What a tick leaves to its scheduler: the outcome, the last version it read or saved, a held-back save. */
export interface LeasedTickResult {
  outcome: TickOutcome;
  known: number | undefined;
  deferred?: DeferredSave;
}

// Set on a tick's context when its scheduler writes a held-back save with the tick's end.
const DEFER = Symbol('defer');
type TickContext = DomainContext & { [DEFER]?: (prev: Rollout, next: Rollout) => void };

/**
 * One tick of one rollout: lease it, read the cluster, run the checks that are due, decide through
 * the strategy, write through the TrafficRouter, and store the new state with compare-and-set.
 * Safe to run again at any point: state is stored before the cluster is changed, and every cluster
 * write is idempotent. Every write is fenced by the lease (see Lease).
 */
export async function tick(ctx: DomainContext, id: string): Promise<TickOutcome> {
  const token = randomUUID();
  // One round trip: the lease, and the rollout read under it.
  const got = await ctx.store.leaseAndGet(id, token, LEASE_MS);
  if (!got.leased) {
    // Another worker has it; look again soon.
    return { done: false, nextAt: ctx.now() + 250 };
  }
  let result: LeasedTickResult | undefined;
  try {
    result = await leasedTick(ctx, id, token, got.rollout, false);
    return result.outcome;
  } finally {
    // One round trip: the lease given back, and the version compared instead of the document re-read.
    const version = await ctx.store.releaseLeaseAndVersion(id, token).catch(() => undefined);
    const outcome = result?.outcome;
    // A command stored while this tick ran (its wake found the job active): look again soon. Not
    // after a failed tick: its backoff stands.
    if (outcome && !outcome.done && !outcome.backoff && version !== undefined && version !== result?.known) {
      outcome.nextAt = Math.min(outcome.nextAt, ctx.now() + 50);
    }
  }
}

/**
 * The tick of a rollout its scheduler has already leased and read (src/workers/ticks.ts claims
 * them in batches). The lease is not given back here: the scheduler does that, with the next due
 * time, in one call. A guard tick whose only change is its check's result (no event, no phase
 * change, no cluster write after it) does not save: the save is handed back as `deferred`, and the
 * scheduler writes it with compare-and-set in that same call.
 */
export function runClaimedTick(
  ctx: DomainContext,
  claimed: { id: string; token: string; rollout: Rollout | undefined },
): Promise<LeasedTickResult> {
  return leasedTick(ctx, claimed.id, claimed.token, claimed.rollout, true);
}

async function leasedTick(
  ctx: DomainContext,
  id: string,
  token: string,
  rollout: Rollout | undefined,
  defer: boolean,
): Promise<LeasedTickResult> {
  const started = performance.now();
  const lease = new Lease(ctx, id, token);
  // The last version this tick read or saved: a different one after the tick means a command landed.
  let known = rollout?.version;
  const store = Object.create(ctx.store) as DomainContext['store'];
  store.update = async (...args) => {
    const stored = await ctx.store.update(...args);
    known = stored.version;
    return stored;
  };
  store.get = async (rid) => {
    const r = await ctx.store.get(rid);
    if (rid === id) known = r?.version;
    return r;
  };
  let deferred: DeferredSave | undefined;
  const base = ctx.router;
  const tickCtx: TickContext = {
    ...ctx,
    store,
    router: (cluster) => fencedRouter(base(cluster), lease.fence),
    ...(defer
      ? {
          [DEFER]: (prev: Rollout, next: Rollout) => {
            deferred = { version: prev.version, doc: JSON.stringify({ ...next, version: prev.version + 1 }) };
          },
        }
      : {}),
  };
  try {
    const outcome = await runTick(tickCtx, rollout);
    return { outcome, known, ...(deferred ? { deferred } : {}) };
  } finally {
    lease.stop();
    ctx.recorder.observeTick((performance.now() - started) / 1000);
  }
}

/**
 * Saves a guard tick's result, or hands it to the scheduler to write with the tick's end when the
 * tick runs under one that does (see runClaimedTick) and the change is only that result.
 */
async function saveGuard(ctx: TickContext, prev: Rollout, c: Change): Promise<void> {
  const defer = ctx[DEFER];
  if (defer && c.events.length === 0 && c.consume.length === 0 && c.r.phase === prev.phase) {
    defer(prev, { ...c.r, updatedAt: ctx.now() });
    return;
  }
  await save(ctx, prev, c);
}

async function runTick(ctx: DomainContext, loaded: Rollout | undefined): Promise<TickOutcome> {
  let r = loaded;
  if (!r) return { done: true };
  if (isTerminal(r.phase)) return { done: true };
  try {
    if (r.commands.length > 0) r = await save(ctx, r, applyCommands(r, ctx.now()));
    return await step(ctx, r);
  } catch (e) {
    if (e instanceof VersionConflict) return { done: false, nextAt: ctx.now() };
    // Someone else holds the rollout now; it writes, this tick does not.
    if (e instanceof LeaseLost) return { done: false, nextAt: ctx.now() + 250 };
    return handleError(ctx, r, e as Error);
  }
}

/** Saves a change; when it decided a rollback, the rollback is written in this same tick. */
async function commit(ctx: DomainContext, prev: Rollout, c: Change): Promise<TickOutcome> {
  const saved = await save(ctx, prev, c);
  if (saved.phase === 'rolling-back') return rollBack(ctx, saved);
  return { done: false, nextAt: ctx.now() };
}

/** All traffic back to stable and the objects restored, then the terminal phase saved. */
async function rollBack(ctx: DomainContext, r: Rollout): Promise<TickOutcome> {
  const router = ctx.router(r.spec.target.cluster);
  await router.rollback(meshTarget(r), { removeCanarySubset: r.createdSubset, rolloutId: r.id });
  ctx.recorder.setWeights(r, { stable: 0, canary: 0 });
  const end = await saveEnd(ctx, r, 'rolling-back', (x) => {
    const c = new Change({ ...x, weights: { stable: 100, canary: 0 }, applied: true }, ctx.now());
    c.event({ type: 'weight', reason: 'rolled back to stable', weights: { stable: 100, canary: 0 } });
    c.transition(x.outcome ?? 'failed', x.reason);
    return c;
  });
  // After the verdict (src/rollouts/after-verdict.ts): schedules the canary's scale-down; never throws.
  if (end.done) await ctx.after?.ended(ctx, r.id);
  return end;
}

/**
 * Saves the end of a rollout whose cluster writes are done (promoted, or rolled back and released).
 * A command stored meanwhile makes the compare-and-set fail: the cluster already says how it ended,
 * so the end is saved on the fresh state and those commands are dropped with an event each.
 */
async function saveEnd(
  ctx: DomainContext,
  r0: Rollout,
  phase: Phase,
  end: (r: Rollout) => Change,
): Promise<TickOutcome> {
  let r = r0;
  for (let attempt = 0; attempt < 5; attempt++) {
    const c = end({ ...r, commands: [] });
    for (const cmd of r.commands) {
      c.event({
        type: 'command',
        reason: `${cmd.type}${cmd.by ? ` by ${cmd.by}` : ''} dropped: the ${phase === 'promoting' ? 'promotion' : 'rollback'} was already written`,
        ...(cmd.by ? { by: cmd.by } : {}),
      });
    }
    try {
      await save(ctx, r, c);
      return { done: true };
    } catch (e) {
      if (!(e instanceof VersionConflict)) throw e;
      const fresh = await ctx.store.get(r.id);
      if (!fresh || fresh.phase !== phase) return { done: false, nextAt: ctx.now() };
      r = fresh;
    }
  }
  return { done: false, nextAt: ctx.now() };
}

async function save(ctx: DomainContext, prev: Rollout, change: Change): Promise<Rollout> {
  const next = { ...change.r, updatedAt: ctx.now() };
  const stored = await ctx.store.update(prev, next, change.events, change.consume);
  for (const e of change.events) {
    if (e.type === 'transition' && e.from && e.to) ctx.recorder.transition(e.from, e.to);
  }
  if (prev.phase !== stored.phase) ctx.recorder.phaseChanged(prev.phase, stored.phase);
  if (change.events.length) ctx.onEvents?.(stored, change.events);
  return stored;
}

/**
 * Saves the evidence of a cluster write this tick has just made (the weight event and `applied`,
 * the created subset). Only the API changes a rollout while its tick holds the lease, and only by
 * storing a command; that must not lose the evidence, or the events would not explain the write
 * and a rollback would not know what vane created. So on a conflict the same change is saved on
 * the fresh state with the new commands kept (the next tick carries them out); any other change
 * (another tick took over) is a conflict as before.
 */
async function saveEffect(ctx: DomainContext, prev: Rollout, change: Change): Promise<Rollout> {
  let base = prev;
  for (let attempt = 0; ; attempt++) {
    try {
      return await save(ctx, base, change);
    } catch (e) {
      if (!(e instanceof VersionConflict) || attempt >= 4) throw e;
      const fresh = await ctx.store.get(prev.id);
      const same = (x: Rollout) => ({ ...x, version: 0, updatedAt: 0, commands: [] });
      if (!fresh || !isDeepStrictEqual(same(fresh), same(prev))) throw e;
      const known = new Set(base.commands.map((x) => x.id));
      const added = fresh.commands.filter((x) => !known.has(x.id));
      change.r = { ...change.r, commands: [...change.r.commands, ...added] };
      base = fresh;
    }
  }
}

function applyCommands(r: Rollout, now: number): Change {
  const c = new Change({ ...r, commands: [] }, now);
  for (const cmd of r.commands) applyCommand(c, cmd, now);
  return c;
}

function applyCommand(c: Change, cmd: Command, now: number): void {
  const r = c.r;
  const by = cmd.by ? ` by ${cmd.by}` : '';
  const why = cmd.reason ? `: ${cmd.reason}` : '';
  const who = cmd.by ? { by: cmd.by } : {};
  // The same table the API checked; the phase may have moved on since, so a command that no longer
  // applies is dropped with the reason, never retried.
  const refusal = commandRefusal(r, cmd.type);
  if (refusal) {
    c.event({ type: 'command', reason: `${cmd.type}${by} dropped: ${refusal}`, ...who });
    return;
  }
  // A step decided and not yet written is the step a promote asks for: moving on again would skip it.
  const stepPending =
    cmd.type === 'promote' && r.phase === 'progressing' && !r.applied && r.progress.stageIndex >= 0;
  const note = stepPending
    ? ` (step ${r.progress.stageIndex + 1} is decided and not yet written; it is written next)`
    : '';
  c.event({ type: 'command', reason: `${cmd.type}${by}${why}${note}`, ...who });
  switch (cmd.type) {
    case 'abort':
      c.transition('rolling-back', `aborted${by}${why}`, { outcome: 'aborted' });
      return;
    case 'pause':
      c.transition('paused', `paused${by}${why}`, { pause: { from: r.phase, kind: 'manual' } });
      return;
    case 'resume': {
      const from = r.pause?.from ?? 'progressing';
      const back = from === 'paused' ? 'progressing' : from;
      c.transition(back, `resumed${by}${why}`, {
        pause: undefined,
        // After drift, vane's own weights are asserted again.
        applied: r.pause?.kind === 'drift' ? false : r.applied,
        progress: {
          ...r.progress,
          gatePassed: true,
          windowStartedAt: now,
          lastAnalysisAt: now,
          lastGuardAt: now,
        },
      });
      return;
    }
    case 'promote': {
      // Open the current gate, or move one step on without waiting for the analysis window.
      if (r.phase === 'awaiting-promotion') {
        c.transition('promoting', `promotion approved${by}${why}`);
        return;
      }
      if (r.phase === 'paused' && r.pause?.kind === 'gate') {
        c.transition('progressing', `gate opened${by}${why}`, {
          pause: undefined,
          progress: { ...r.progress, gatePassed: true, windowStartedAt: now, lastAnalysisAt: now },
        });
        return;
      }
      if (r.phase === 'progressing' && !stepPending) {
        const stages = stagesOf(r.spec.strategy);
        const index = r.progress.stageIndex + 1;
        const stage = stages[index];
        if (!stage) {
          c.transition('promoting', `promoted${by}${why}`);
          return;
        }
        c.r = {
          ...c.r,
          traffic: stage.traffic,
          weights: weightsOf(stage.traffic),
          applied: false,
          progress: {
            ...r.progress,
            stageIndex: index,
            stageStartedAt: now,
            windowStartedAt: now,
            lastAnalysisAt: now,
            passes: 0,
            gatePassed: false,
          },
        };
      }
      return;
    }
    case 'promote-full':
      c.transition('promoting', `full promotion${by}${why}`, { pause: undefined });
      return;
    case 'retry':
      return;
  }
}

async function step(ctx: DomainContext, r: Rollout): Promise<TickOutcome> {
  const now = ctx.now();
  const target = meshTarget(r);
  const router = ctx.router(r.spec.target.cluster);
  switch (r.phase) {
    case 'pending': {
      const c = new Change(r, now);
      c.transition('initializing', 'picked up by a worker');
      await save(ctx, r, c);
      return { done: false, nextAt: now };
    }
    case 'initializing':
      return initialize(ctx, r, now);
    case 'progressing':
    case 'awaiting-promotion':
      return progress(ctx, r, now);
    case 'paused': {
      const until = r.pause?.until;
      if (r.pause?.kind === 'gate' && until !== undefined && now >= until) {
        const c = new Change(r, now);
        c.transition(r.pause.from === 'paused' ? 'progressing' : r.pause.from, 'gate duration elapsed', {
          pause: undefined,
          progress: {
            ...r.progress,
            gatePassed: true,
            windowStartedAt: now,
            lastAnalysisAt: now,
            lastGuardAt: now,
          },
        });
        await save(ctx, r, c);
        return { done: false, nextAt: now };
      }
      return { done: false, nextAt: Math.min(until ?? Number.POSITIVE_INFINITY, now + IDLE_MS) };
    }
    case 'promoting': {
      // Keeps what undo needs (a relabelled subset's old labels) before the promotion changes it.
      await ctx.after?.beforePromote(ctx, r);
      await router.promote(target, r.spec.strategy.promotion);
      await router.release(target);
      ctx.recorder.setWeights(r, { stable: 0, canary: 0 });
      const end = await saveEnd(ctx, r, 'promoting', (x) => {
        const c = new Change(
          { ...x, weights: { stable: 0, canary: 100 }, applied: true, errorCount: 0 },
          now,
        );
        c.event({
          type: 'weight',
          reason: `promoted (${r.spec.strategy.promotion})`,
          weights: { stable: 0, canary: 100 },
        });
        c.transition('succeeded', 'promoted');
        return c;
      });
      // After the verdict (src/rollouts/after-verdict.ts): schedules the old version's scale-down; never throws.
      if (end.done) await ctx.after?.ended(ctx, r.id);
      return end;
    }
    case 'rolling-back':
      return rollBack(ctx, r);
    default:
      return { done: true };
  }
}

async function initialize(ctx: DomainContext, r: Rollout, now: number): Promise<TickOutcome> {
  const target = meshTarget(r);
  const router = ctx.router(r.spec.target.cluster);
  const deadline = r.phaseStartedAt + r.spec.analysis.deadlines.workloadReady;
  if (ctx.preflight && r.progress.stageIndex < 0 && !r.applied) {
    const errors = await ctx.preflight.check(target, r.id);
    if (errors.length > 0) {
      const c = new Change(r, now);
      c.transition(
        'rolling-back',
        `preflight failed: ${errors.map((e) => `${e.code} ${e.message}`).join('; ')}`,
        { outcome: 'failed' },
      );
      return commit(ctx, r, c);
    }
  }
  await router.snapshot(target, r.id);
  const subset = await router.ensureCanarySubset(target);
  let cur = r;
  if (subset.created && !r.createdSubset) {
    const c = new Change({ ...r, createdSubset: true }, now);
    c.event({
      type: 'subset',
      reason: `created subset '${target.canarySubset}' in DestinationRule ${target.namespace}/${target.destinationRule}`,
    });
    cur = await saveEffect(ctx, r, c);
  }
  const workload = r.spec.canary.workload;
  if (workload && ctx.workloads) {
    const status = await ctx.workloads.readWorkload(
      target.namespace,
      workload.kind,
      workload.name,
      target.cluster,
    );
    if (!status.ready) {
      if (now >= deadline) {
        const c = new Change(cur, now);
        c.transition(
          'rolling-back',
          `canary ${workload.kind} ${target.namespace}/${workload.name} not ready after ${Math.round(r.spec.analysis.deadlines.workloadReady / 1000)}s (${status.readyReplicas}/${status.desired} ready${status.message ? `: ${status.message}` : ''})`,
          { outcome: 'failed' },
        );
        return commit(ctx, cur, c);
      }
      return {
        done: false,
        nextAt: Math.min(deadline, now + Math.min(r.spec.analysis.guardInterval, 5_000)),
      };
    }
  }
  const c = new Change({ ...cur, progress: initialProgress(now), errorCount: 0 }, now);
  c.transition('progressing', 'canary ready; starting the first step');
  await save(ctx, cur, c);
  return { done: false, nextAt: now };
}

async function applyTraffic(ctx: DomainContext, r: Rollout): Promise<void> {
  const target = meshTarget(r);
  const router = ctx.router(r.spec.target.cluster);
  const t = r.traffic;
  // Order matters for users' traffic: the A/B route and the mirror come and go around the weights.
  await router.setExperiment(
    target,
    t.match ? { routeName: `vane-${r.spec.canary.subset}`, match: t.match } : null,
  );
  await router.setMirror(target, t.mirrorPercent ? { percent: t.mirrorPercent } : null);
  await router.setWeights(target, weightsOf(t));
  ctx.recorder.setWeights(r, weightsOf(t));
}

async function progress(ctx: DomainContext, r0: Rollout, now: number): Promise<TickOutcome> {
  let r = r0;
  const target = meshTarget(r);
  const router = ctx.router(r.spec.target.cluster);

  if (!r.applied) {
    await applyTraffic(ctx, r);
    const c = new Change({ ...r, applied: true, errorCount: 0 }, now);
    c.event({ type: 'weight', reason: describeTraffic(r), weights: r.weights });
    r = await saveEffect(ctx, r, c);
  } else {
    const actual = await router.readWeights(target);
    if (actual.stable !== r.weights.stable || actual.canary !== r.weights.canary) {
      return handleDrift(ctx, r, actual, now);
    }
  }

  const stages = stagesOf(r.spec.strategy);
  const timing = timingOf(r);
  const need = analysisNeed(r.progress, timing, now);
  const obs: Observation = {};
  let report: AnalysisReport | undefined;
  if (need !== 'none') {
    report = await ctx.analyzer.analyze(r, need === 'full' ? 'full' : 'critical', now);
    for (const m of report.results) ctx.recorder.recordAnalysis(m.name, m.verdict);
    if (need === 'full') {
      obs.analysis = report.verdict;
      obs.guard = report.results.some((m) => m.critical && !m.dryRun && m.verdict === 'fail')
        ? 'fail'
        : 'pass';
    } else obs.guard = report.verdict;
  }
  const d = decide(
    stages,
    timing,
    r.progress,
    obs,
    now,
    r.phase as 'progressing' | 'awaiting-promotion',
    r.phaseStartedAt,
  );
  const c = new Change({ ...r, progress: d.progress, ...(report ? { lastAnalysis: report } : {}) }, now);
  if (report && (need === 'full' || report.verdict !== 'pass')) {
    c.event({
      type: 'analysis',
      reason: `${need === 'full' ? 'analysis' : 'guard check'}: ${report.verdict}${'reason' in d && d.reason ? ` — ${d.reason}` : ''}`,
      results: report.results,
      verdict: report.verdict,
    });
  }
  if (ctx.gates && d.type !== 'rollback') {
    const asked = await ctx.gates.rollbackRequested(r);
    if (asked) {
      c.transition('rolling-back', `rollback requested: ${asked}`, { outcome: 'failed' });
      return commit(ctx, r, c);
    }
    if (d.type === 'stage') {
      const names: GateName[] =
        r.progress.stageIndex < 0
          ? ['pre-rollout', 'confirm-rollout', 'confirm-traffic-increase']
          : ['confirm-traffic-increase'];
      const held = await holdAtGates(ctx, r, c, names, d.progress.stageIndex, d.progress.lastGuardAt, now);
      if (held) return held;
    } else if (r.phase === 'awaiting-promotion' && d.type === 'wait') {
      const held = await holdAtGates(
        ctx,
        r,
        c,
        ['confirm-promotion'],
        r.progress.stageIndex,
        d.progress.lastGuardAt,
        now,
        { always: true, deadline: false },
      );
      if (!held) {
        c.transition('promoting', `promotion approved: ${c.events.at(-1)?.reason ?? 'gate open'}`);
        await save(ctx, r, c);
        return { done: false, nextAt: now };
      }
      return held;
    }
  }
  switch (d.type) {
    case 'wait':
      await saveGuard(ctx, r, c);
      return { done: false, nextAt: d.at };
    case 'stage':
      c.r = { ...c.r, traffic: d.traffic, weights: weightsOf(d.traffic), applied: false };
      await save(ctx, r, c);
      return { done: false, nextAt: now };
    case 'pause':
      c.transition('paused', d.reason, {
        pause: { from: 'progressing', kind: 'gate', ...(d.until !== undefined ? { until: d.until } : {}) },
      });
      await save(ctx, r, c);
      return { done: false, nextAt: d.until ?? now + IDLE_MS };
    case 'await-promotion':
      c.transition('awaiting-promotion', d.reason, {}, report);
      await save(ctx, r, c);
      return { done: false, nextAt: now + timing.guardIntervalMs };
    case 'promote':
      c.transition('promoting', d.reason, {}, report);
      await save(ctx, r, c);
      return { done: false, nextAt: now };
    case 'rollback':
      c.transition('rolling-back', explain(d.reason, report), { outcome: 'failed' }, report);
      return commit(ctx, r, c);
  }
}

/**
 * Asks each gate that applies before the next step (or promotion). All open: undefined, and the
 * change goes on. One closed: the rollout holds where it is (its guard checks go on) and is asked
 * again at the next guard interval; past the gate deadline it rolls back.
 */
async function holdAtGates(
  ctx: DomainContext,
  r: Rollout,
  c: Change,
  names: GateName[],
  stageIndex: number,
  lastGuardAt: number,
  now: number,
  opts: { always?: boolean; deadline?: boolean } = {},
): Promise<TickOutcome | undefined> {
  const gates = ctx.gates!;
  const opened = new Set(r.openedGates ?? []);
  for (const name of names) {
    if (!opts.always && !gates.applies(r, name)) continue;
    const key = gates.keyOf(name, stageIndex);
    if (opened.has(key)) continue;
    const g = await gates.check(r, name, stageIndex);
    if (g.consume) c.consume.push(...g.consume);
    if (g.open) {
      opened.add(key);
      c.event({ type: 'gate', reason: `${key} open: ${g.message}`, ...(g.by ? { by: g.by } : {}) });
      continue;
    }
    // While a webhook's answer is pending, the last answer stands (and is not an event again).
    const message = g.pending && r.gate?.key === key ? r.gate.message : g.message;
    const since = r.gate?.key === key ? r.gate.since : now;
    const limit = r.spec.analysis.deadlines.gate;
    if (opts.deadline !== false && now - since >= limit) {
      c.transition('rolling-back', `gate ${key} still closed after ${formatDuration(limit)}: ${message}`, {
        outcome: 'failed',
        gate: undefined,
        openedGates: undefined,
      });
      return commit(ctx, r, c);
    }
    if (!g.pending && (r.gate?.key !== key || r.gate.message !== message)) {
      c.event({ type: 'gate', reason: `waiting at ${key}: ${message}` });
    }
    // Hold at the current step: its progress stays, its guard checks go on.
    c.r = {
      ...c.r,
      progress: { ...r.progress, lastGuardAt },
      gate: { key, since, message },
      openedGates: [...opened],
    };
    await save(ctx, r, c);
    return { done: false, nextAt: now + r.spec.analysis.guardInterval };
  }
  c.r = { ...c.r, gate: undefined, openedGates: undefined };
  return undefined;
}

function describeTraffic(r: Rollout): string {
  const total = stagesOf(r.spec.strategy).length;
  const t = r.traffic;
  const parts = [`canary ${t.canaryWeight}%`];
  if (t.match) parts.push('matching requests to the canary');
  if (t.mirrorPercent) parts.push(`${t.mirrorPercent}% mirrored`);
  return `step ${r.progress.stageIndex + 1} of ${total}: ${parts.join(', ')}`;
}

/** "a critical check failed: success-rate 91.2% < 99%" — the failing values in the reason itself. */
function explain(reason: string, report?: AnalysisReport): string {
  const failing =
    report?.results.filter((m) => !m.dryRun && m.verdict !== 'pass').map((m) => m.message) ?? [];
  return failing.length ? `${reason}: ${failing.join('; ')}` : reason;
}

async function handleDrift(
  ctx: DomainContext,
  r: Rollout,
  actual: Weights,
  now: number,
): Promise<TickOutcome> {
  const what = `managed weights are stable ${actual.stable} / canary ${actual.canary}, vane last wrote ${r.weights.stable} / ${r.weights.canary}`;
  const c = new Change(r, now);
  c.event({ type: 'drift', reason: `${what} (policy: ${r.spec.drift})`, weights: actual });
  switch (r.spec.drift) {
    case 'reassert':
      c.r = { ...c.r, applied: false };
      await save(ctx, r, c);
      return { done: false, nextAt: now };
    case 'abort':
      c.transition('rolling-back', `drift: ${what}`, { outcome: 'failed' });
      return commit(ctx, r, c);
    default:
      c.transition('paused', `drift: ${what}; resume to reassert vane's weights, or abort`, {
        pause: { from: r.phase, kind: 'drift' },
      });
      await save(ctx, r, c);
      return { done: false, nextAt: now + IDLE_MS };
  }
}

/** An outside call failed: retry with backoff when a retry can help, roll back (or end) when it cannot. */
async function handleError(ctx: DomainContext, r: Rollout, e: Error): Promise<TickOutcome> {
  const now = ctx.now();
  const retryable = !(e instanceof MeshError) || e.retryable;
  ctx.logger.warn({ rollout: r.id, phase: r.phase, err: e.message, retryable }, 'tick failed');
  const fresh = (await ctx.store.get(r.id)) ?? r;
  if (isTerminal(fresh.phase)) return { done: true };
  const c = new Change({ ...fresh, errorCount: fresh.errorCount + 1, lastError: e.message }, now);
  // One event for the first error of a streak, then every tenth, so a long outage does not flood the history.
  if (fresh.errorCount % 10 === 0)
    c.event({ type: 'error', reason: `${fresh.phase}: ${e.message}${retryable ? ' (retrying)' : ''}` });
  if (!retryable) {
    if (fresh.phase === 'rolling-back') {
      c.transition(fresh.outcome ?? 'failed', `${fresh.reason}; rollback could not finish: ${e.message}`);
    } else {
      c.transition('rolling-back', `error: ${e.message}`, { outcome: 'failed' });
    }
  }
  let saved: Rollout | undefined;
  try {
    saved = await save(ctx, fresh, c);
  } catch (err) {
    if (!(err instanceof VersionConflict)) throw err;
  }
  const backoff = Math.min(500 * 2 ** Math.min(fresh.errorCount, 6), 30_000);
  if (!retryable && saved?.phase === 'rolling-back') {
    // The rollback this error decided is written in this tick too; if that fails, the next tick retries it.
    try {
      return await rollBack(ctx, saved);
    } catch (err) {
      ctx.logger.warn({ rollout: r.id, err: (err as Error).message }, 'rollback failed; retrying');
      return { done: false, nextAt: now + 500, backoff: true };
    }
  }
  return retryable ? { done: false, nextAt: now + backoff, backoff: true } : { done: false, nextAt: now };
}
