import { randomUUID } from 'node:crypto';
import { initialProgress } from '../strategies/index.ts';
import { validateMetricChecks } from './analyzer.ts';
import type { DomainContext } from './context.ts';
import { RolloutError } from './errors.ts';
import type { CommandType, Rollout, RolloutEvent } from './model.ts';
import { commandRefusal, isTerminal } from './phases.ts';
import type { StoredReads } from './read-cache.ts';
import { describeZodError, type RolloutSpec, RolloutSpecSchema } from './spec.ts';
import type { ListQuery, StoredRollout } from './store.ts';
import { mergeUnder } from './templates.ts';

function newId(): string {
  // Job ids must not contain ':'; a UUID's hex is fine and unguessable.
  return `ro-${randomUUID().replaceAll('-', '').slice(0, 20)}`;
}

/** Resolves a named template, merges the request over it, and validates the result with every field path named. */
export async function resolveSpec(
  ctx: Pick<DomainContext, 'templates' | 'validateSpec'>,
  input: unknown,
): Promise<{ spec: RolloutSpec; input: Record<string, unknown> }> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new RolloutError('BAD_REQUEST', 'the rollout spec must be a JSON object');
  }
  let raw = input as Record<string, unknown>;
  if (raw.template !== undefined) {
    if (typeof raw.template !== 'string')
      throw new RolloutError('BAD_REQUEST', 'template: must be the name of a template');
    const t = await ctx.templates.get(raw.template);
    if (!t) {
      const known = (await ctx.templates.list()).map((x) => x.name);
      throw new RolloutError(
        'BAD_REQUEST',
        `template: no template named '${raw.template}'; templates are: ${known.join(', ') || '(none)'}`,
      );
    }
    const { template: _, ...rest } = raw;
    raw = mergeUnder(t.spec, rest);
  }
  const parsed = RolloutSpecSchema.safeParse(raw);
  const issues = parsed.success
    ? [...validateMetricChecks(parsed.data), ...(ctx.validateSpec?.(parsed.data) ?? [])]
    : describeZodError(parsed.error);
  if (!parsed.success || issues.length > 0) {
    const first = issues[0]!;
    throw new RolloutError('BAD_REQUEST', `${first.path || 'spec'}: ${first.message}`, { issues });
  }
  return { spec: parsed.data, input: raw };
}

export interface StartResult {
  rollout: Rollout;
  /** false when the idempotency key matched an existing rollout. */
  created: boolean;
}

/** Starts a rollout, or returns the one with the same idempotency key; refuses a target another rollout holds. */
export async function startRollout({
  ctx,
  input,
  by,
}: {
  ctx: DomainContext;
  input: unknown;
  /** Who starts it (the API token's name); metadata.triggeredBy is the client's own note. */
  by?: string;
}): Promise<StartResult> {
  const { spec, input: resolved } = await resolveSpec(ctx, input);
  const now = ctx.now();
  const id = newId();
  const rollout: Rollout = {
    id,
    version: 0,
    spec,
    input: resolved,
    phase: 'pending',
    reason: 'created',
    createdAt: now,
    updatedAt: now,
    phaseStartedAt: now,
    progress: initialProgress(now),
    traffic: { canaryWeight: 0 },
    weights: { stable: 100, canary: 0 },
    applied: false,
    createdSubset: false,
    commands: [],
    errorCount: 0,
  };
  const who = by ? ` by ${by}` : '';
  const note =
    spec.metadata.triggeredBy && spec.metadata.triggeredBy !== by
      ? ` (triggeredBy: ${spec.metadata.triggeredBy})`
      : '';
  const event: RolloutEvent = {
    time: now,
    type: 'created',
    reason: `rollout created${who}${note}`,
    to: 'pending',
    ...(by ? { by } : {}),
  };
  const res = await ctx.store.create(rollout, event);
  if (res.status === 'idempotent') {
    const existing = await ctx.store.get(res.id);
    if (existing) return { rollout: existing, created: false };
    throw new RolloutError(
      'CONFLICT',
      `idempotency key '${spec.idempotencyKey}' belongs to rollout ${res.id}, which no longer exists`,
    );
  }
  if (res.status === 'busy') {
    const t = spec.target;
    const name = res.object === 'VirtualService' ? t.virtualService : t.destinationRule;
    throw new RolloutError(
      'TARGET_BUSY',
      `${res.object} ${t.namespace}/${name} is held by active rollout ${res.id}; abort it or wait for it to end`,
      { activeRolloutId: res.id },
    );
  }
  ctx.onEvents?.(res.rollout, [event]);
  await ctx.scheduler.wake(id);
  return { rollout: res.rollout, created: true };
}

export async function getRollout({ ctx, id }: { ctx: DomainContext; id: string }): Promise<Rollout> {
  const r = await ctx.store.get(id);
  if (!r) throw new RolloutError('NOT_FOUND', `no rollout with id '${id}'`);
  return r;
}

/** The stored form of a rollout (version and JSON document), for a reader that caches what it builds from it. */
export async function getStoredRollout({
  ctx,
  id,
  reads = ctx.store,
}: {
  ctx: DomainContext;
  id: string;
  /** Where to read it. Default the store; the API's GET passes its client-side cache. */
  reads?: StoredReads;
}): Promise<StoredRollout> {
  const stored = await reads.getStored(id);
  if (!stored) throw new RolloutError('NOT_FOUND', `no rollout with id '${id}'`);
  return stored;
}

export function listRollouts({ ctx, query }: { ctx: DomainContext; query: ListQuery }): Promise<Rollout[]> {
  return ctx.store.list(query);
}

export async function rolloutEvents({
  ctx,
  id,
  after,
  limit,
}: {
  ctx: DomainContext;
  id: string;
  after?: string;
  limit?: number;
}) {
  if (after !== undefined && !/^\d{1,20}(-\d{1,20})?$/.test(after)) {
    throw new RolloutError(
      'BAD_REQUEST',
      `after: '${after.slice(0, 50)}' is not an event id (such as 1717171717171-0)`,
    );
  }
  await getRollout({ ctx, id });
  return ctx.store.events(id, { ...(after ? { after } : {}), ...(limit ? { limit } : {}) });
}

/** Stores an operator's command on the rollout and wakes its tick at once. */
export async function sendCommand({
  ctx,
  id,
  type,
  by,
  reason,
}: {
  ctx: DomainContext;
  id: string;
  type: Exclude<CommandType, 'retry'>;
  by?: string;
  reason?: string;
}): Promise<Rollout> {
  const now = ctx.now();
  const updated = await ctx.store.mutate(id, (r) => {
    const refusal = commandRefusal(r, type);
    if (refusal) throw new RolloutError('CONFLICT', `cannot ${type} rollout ${id}: ${refusal}`);
    const command = { id: randomUUID(), type, at: now, ...(by ? { by } : {}), ...(reason ? { reason } : {}) };
    return { next: { ...r, commands: [...r.commands, command] } };
  });
  if (!updated) throw new RolloutError('NOT_FOUND', `no rollout with id '${id}'`);
  await ctx.scheduler.wake(id);
  return updated;
}

/** Starts a new rollout with the spec of a failed or aborted one (same target; the new one gets its own id). */
export async function retryRollout({
  ctx,
  id,
  by,
}: {
  ctx: DomainContext;
  id: string;
  by?: string;
}): Promise<StartResult> {
  const old = await getRollout({ ctx, id });
  const refusal = commandRefusal(old, 'retry');
  if (refusal) throw new RolloutError('CONFLICT', `cannot retry rollout ${id}: ${refusal}`);
  const { idempotencyKey: _, ...input } = old.input;
  const metadata = {
    ...(input.metadata as Record<string, string> | undefined),
    retryOf: id,
    ...(by ? { triggeredBy: by } : {}),
  };
  return startRollout({ ctx, input: { ...input, metadata }, ...(by ? { by } : {}) });
}

const GATE_KEY = /^(confirm-rollout|confirm-promotion|confirm-traffic-increase(:\d{1,3})?)$/;

/**
 * Opens a gate of a rollout once: the gate it is waiting at, or the one named (confirm-rollout,
 * confirm-promotion, confirm-traffic-increase for the next step, or confirm-traffic-increase:N).
 * The approval is bound to this rollout and this gate; the engine uses it once.
 */
export async function approveGate({
  ctx,
  id,
  gate,
  by,
  reason,
}: {
  ctx: DomainContext;
  id: string;
  gate?: string;
  by?: string;
  reason?: string;
}): Promise<{ rollout: Rollout; gate: string }> {
  if (!ctx.approvals) throw new RolloutError('CONFLICT', 'approvals are not available in this process');
  const r = await ctx.store.get(id);
  if (!r) throw new RolloutError('NOT_FOUND', `no rollout with id '${id}'`);
  if (isTerminal(r.phase) || r.phase === 'rolling-back') {
    throw new RolloutError('CONFLICT', `rollout ${id} is ${r.phase}; there is no gate left to approve`);
  }
  if (gate !== undefined && !GATE_KEY.test(gate)) {
    throw new RolloutError(
      'BAD_REQUEST',
      `gate: '${gate}' is not a gate; use confirm-rollout, confirm-promotion, confirm-traffic-increase or confirm-traffic-increase:<step index>`,
    );
  }
  let key = gate;
  if (key === 'confirm-traffic-increase') key = `confirm-traffic-increase:${r.progress.stageIndex + 1}`;
  key ??= r.gate?.key ?? (r.phase === 'awaiting-promotion' ? 'confirm-promotion' : undefined);
  if (!key || key === 'pre-rollout') {
    throw new RolloutError(
      'CONFLICT',
      `rollout ${id} is not waiting at a gate (it is ${r.phase}); name the gate to approve it ahead of time`,
    );
  }
  await ctx.approvals.approve(id, key, by ?? 'anonymous', { ...(reason ? { reason } : {}), now: ctx.now() });
  await ctx.store.appendEvents(id, [
    {
      time: ctx.now(),
      type: 'gate',
      reason: `approval of ${key} stored${by ? ` by ${by}` : ''}`,
      ...(by ? { by } : {}),
    },
  ]);
  await ctx.scheduler.wake(id);
  return { rollout: r, gate: key };
}
