import type { z } from 'zod';
import type { Redis } from '../redis.ts';
import type { WebhookSchema } from '../rollouts/spec.ts';
import { type DeliveryResult, deliver, describeUrl } from './deliver.ts';
import type { NotifyPayload } from './payload.ts';
import { MissingSecretError, type SecretLookup, secretFor } from './signing.ts';

export type Webhook = z.output<typeof WebhookSchema>;

export interface GateCallOptions {
  /** Resolves the webhook's `secretEnv`; without it (or without `secretEnv`) the request is unsigned. */
  secrets?: SecretLookup;
  /** Cancels the call (the tick's own deadline). The webhook's `timeout` applies in any case. */
  signal?: AbortSignal;
  /** `X-Vane-Delivery`. Default a random UUID. */
  deliveryId?: string;
}

export interface GateResult {
  /** 2xx: the gate is open. Anything else, or no answer, keeps it closed. */
  open: boolean;
  status?: number;
  /** For the rollout's events: who answered what, e.g. "confirm-promotion webhook to https://gate/check answered 403: not yet". */
  message: string;
}

function call(
  webhook: Webhook,
  payload: NotifyPayload,
  opts: GateCallOptions,
): Promise<DeliveryResult> | DeliveryResult {
  let secret: string | undefined;
  try {
    secret = opts.secrets ? secretFor(webhook, opts.secrets, label(webhook)) : undefined;
  } catch (e) {
    if (e instanceof MissingSecretError) return { ok: false, error: e.message, ms: 0 };
    throw e;
  }
  if (webhook.secretEnv && !opts.secrets) {
    return {
      ok: false,
      error: `${label(webhook)} has secretEnv ${webhook.secretEnv} but no secret lookup was given`,
      ms: 0,
    };
  }
  return deliver({ url: webhook.url, event: webhook.type }, payload, {
    timeoutMs: webhook.timeout,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.deliveryId ? { deliveryId: opts.deliveryId } : {}),
    ...(secret ? { secret } : {}),
  });
}

function label(w: Webhook): string {
  return `${w.type} webhook${w.name ? ` '${w.name}'` : ''} to ${describeUrl(w.url)}`;
}

function describe(w: Webhook, res: DeliveryResult): string {
  if (res.status !== undefined) {
    // Only the status and the JSON answer's short `reason`/`message`, never the raw body.
    const said = res.response ? `: ${res.response}` : '';
    return `${label(w)} answered ${res.status}${said}`;
  }
  return `${label(w)} unreachable: ${res.error ?? 'no answer'}`;
}

/**
 * Asks a gate webhook (confirm-rollout, pre-rollout, confirm-traffic-increase, confirm-promotion)
 * once, within the webhook's timeout: a 2xx opens it, anything else or no answer keeps it closed.
 * Never throws for the receiver's failures; the engine asks again on a later tick.
 */
export async function checkGate(
  webhook: Webhook,
  payload: NotifyPayload,
  opts: GateCallOptions = {},
): Promise<GateResult> {
  const res = await call(webhook, payload, opts);
  return {
    open: res.ok,
    ...(res.status !== undefined ? { status: res.status } : {}),
    message: describe(webhook, res),
  };
}

/**
 * Asks a `rollback` webhook whether the rollout should be rolled back: a 2xx answer asks for a
 * rollback (Flagger's semantics); anything else, or no answer, does not.
 */
export async function checkRollbackRequest(
  webhook: Webhook,
  payload: NotifyPayload,
  opts: GateCallOptions = {},
): Promise<{ rollback: boolean; status?: number; message: string }> {
  const res = await call(webhook, payload, opts);
  return {
    rollback: res.ok,
    ...(res.status !== undefined ? { status: res.status } : {}),
    message: describe(webhook, res),
  };
}

/** What the webhooks of one gate answered, stored for the next tick. */
export interface WebhookAnswer {
  /** Gate: every webhook answered 2xx. Rollback: one asked for a rollback. */
  yes: boolean;
  message: string;
  at: number;
}

// ---- Approvals stored in vane ----

/** The gates an approval can open. */
export const GATE_TYPES = ['confirm-rollout', 'confirm-traffic-increase', 'confirm-promotion'] as const;
export type GateType = (typeof GATE_TYPES)[number];

/**
 * The key of one gate of one rollout: `confirm-promotion`, `confirm-rollout`, or
 * `confirm-traffic-increase:<step index>` — one approval per step, so approving step 3 does not open step 4.
 */
export function gateKey(type: GateType, stepIndex?: number): string {
  if (type === 'confirm-traffic-increase') {
    if (stepIndex === undefined || !Number.isInteger(stepIndex) || stepIndex < 0)
      throw new Error(
        `gate confirm-traffic-increase needs the step index (an integer ≥ 0), got ${stepIndex}`,
      );
    return `${type}:${stepIndex}`;
  }
  return type;
}

const GATE_KEY = /^(confirm-rollout|confirm-promotion|confirm-traffic-increase:\d{1,3})$/;

/** One approval: who opened which gate of which rollout, and when. */
export interface Approval {
  rolloutId: string;
  gateKey: string;
  by: string;
  at: number;
  reason?: string;
}

export interface GateStoreOptions {
  /** How long an unused approval stays valid, in seconds. Default 86400 (a day). */
  ttlSeconds?: number;
}

/**
 * Approvals from the API, the CLI or Slack. Each is bound to one rollout and one gate key and is
 * used once: consuming it deletes it atomically (GETDEL), so two workers cannot both pass the gate
 * on it, and the next release starts with every gate closed.
 */
export class GateStore {
  private readonly ttlSeconds: number;
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    { ttlSeconds = 86_400 }: GateStoreOptions = {},
  ) {
    this.ttlSeconds = ttlSeconds;
  }

  private key(rolloutId: string, gate: string): string {
    return [this.prefix, 'r', 'approval', rolloutId, gate].join(':');
  }

  /**
   * The Redis key of an approval, for the engine to delete in the same atomic step that saves the
   * gate's effect (so a lost compare-and-set does not lose the operator's approval).
   */
  approvalKey(rolloutId: string, gate: string): string {
    this.check(rolloutId, gate);
    return this.key(rolloutId, gate);
  }

  private check(rolloutId: string, gate: string): void {
    if (!/^[A-Za-z0-9._-]{1,100}$/.test(rolloutId))
      throw new Error(`approval: invalid rollout id '${rolloutId}'`);
    if (!GATE_KEY.test(gate))
      throw new Error(
        `approval: unknown gate key '${gate}'; use confirm-rollout, confirm-promotion or confirm-traffic-increase:<step index>`,
      );
  }

  /** Stores an approval (replacing an unused one for the same gate) and returns it. */
  async approve(
    rolloutId: string,
    gate: string,
    by: string,
    opts: { reason?: string; now?: number } = {},
  ): Promise<Approval> {
    this.check(rolloutId, gate);
    const approval: Approval = {
      rolloutId,
      gateKey: gate,
      by,
      at: opts.now ?? Date.now(),
      ...(opts.reason ? { reason: opts.reason } : {}),
    };
    await this.redis.set(this.key(rolloutId, gate), JSON.stringify(approval), 'EX', this.ttlSeconds);
    return approval;
  }

  /** Takes the approval of this gate of this rollout, once: the first caller gets it, later ones undefined. */
  async consumeApproval(rolloutId: string, gate: string): Promise<Approval | undefined> {
    this.check(rolloutId, gate);
    const raw = await this.redis.getdel(this.key(rolloutId, gate));
    return raw ? (JSON.parse(raw) as Approval) : undefined;
  }

  /** The waiting approval, left in place: the engine deletes it (approvalKey) with the state that uses it. */
  async peekApproval(rolloutId: string, gate: string): Promise<Approval | undefined> {
    this.check(rolloutId, gate);
    const raw = await this.redis.get(this.key(rolloutId, gate));
    return raw ? (JSON.parse(raw) as Approval) : undefined;
  }

  // ---- Webhook answers, asked off the tick and read by a later tick ----

  private answerKey(rolloutId: string, gate: string, part: 'answer' | 'asking'): string {
    if (!/^[A-Za-z0-9._-]{1,100}$/.test(rolloutId))
      throw new Error(`gate: invalid rollout id '${rolloutId}'`);
    if (!/^[a-z-]{1,40}(:\d{1,3})?$/.test(gate)) throw new Error(`gate: invalid gate key '${gate}'`);
    return [this.prefix, 'r', 'gate', part, rolloutId, gate].join(':');
  }

  /** The stored answer of a webhook call for this gate (not removed; see answerKeyOf), or undefined. */
  async peekAnswer(
    rolloutId: string,
    gate: string,
  ): Promise<{ key: string; answer: WebhookAnswer } | undefined> {
    const key = this.answerKey(rolloutId, gate, 'answer');
    const raw = await this.redis.get(key);
    return raw ? { key, answer: JSON.parse(raw) as WebhookAnswer } : undefined;
  }

  /** Takes the stored answer at once (GETDEL): for answers whose loss only means asking again. */
  async takeAnswer(rolloutId: string, gate: string): Promise<WebhookAnswer | undefined> {
    const raw = await this.redis.getdel(this.answerKey(rolloutId, gate, 'answer'));
    return raw ? (JSON.parse(raw) as WebhookAnswer) : undefined;
  }

  /** Claims the call of this gate's webhooks for `ttlMs` (its timeout and a margin); false when one is running. */
  async claimCall(rolloutId: string, gate: string, ttlMs: number): Promise<boolean> {
    const key = this.answerKey(rolloutId, gate, 'asking');
    return (await this.redis.set(key, '1', 'PX', Math.ceil(ttlMs), 'NX')) === 'OK';
  }

  /** Stores the answer of a finished call for `ttlMs` (an old answer is asked again, not trusted) and ends the claim. */
  async storeAnswer(rolloutId: string, gate: string, answer: WebhookAnswer, ttlMs: number): Promise<void> {
    await this.redis
      .multi()
      .set(this.answerKey(rolloutId, gate, 'answer'), JSON.stringify(answer), 'PX', Math.ceil(ttlMs))
      .del(this.answerKey(rolloutId, gate, 'asking'))
      .exec();
  }

  /** Whether an unused approval is waiting (for display; the engine consumes). */
  async hasApproval(rolloutId: string, gate: string): Promise<boolean> {
    this.check(rolloutId, gate);
    return (await this.redis.exists(this.key(rolloutId, gate))) === 1;
  }
}
