import type { GateKeeper, GateName } from '../rollouts/context.ts';
import type { Rollout } from '../rollouts/model.ts';
import {
  checkGate,
  checkRollbackRequest,
  type GateStore,
  gateKey,
  type Webhook,
  type WebhookAnswer,
} from './gates.ts';
import { buildPayload } from './payload.ts';
import { type SecretLookup, secretResolver } from './signing.ts';

/** How long a stored webhook answer may wait for the tick that reads it, at least. */
const ANSWER_TTL_MS = 60_000;
/** Room beyond a webhook's own timeout before another worker may ask again (a killed caller). */
const CLAIM_MARGIN_MS = 2_000;

/**
 * The engine's gates: a gate is open when an approval for it is waiting (deleted by the engine in
 * the same step that saves its effect, so it opens this gate once and survives a lost
 * compare-and-set) or when every webhook of its type answered 2xx. Webhooks are never called on the
 * tick's path: a check starts one bounded call in the background (one per rollout and gate at a
 * time, across workers) whose answer is stored in Redis, and a later tick reads it. A webhook that
 * hangs therefore never holds a tick, an abort or a guard check. `rollback` webhooks work the same way.
 */
export function createGateKeeper(opts: {
  store: GateStore;
  secrets?: SecretLookup;
  /** Where failures to store an answer go (the call is asked again). */
  onError?: (err: Error) => void;
}): GateKeeper {
  const secrets = secretResolver(opts.secrets);
  const store = opts.store;

  /** Starts the call of these webhooks unless one is running; its answer lands in Redis. */
  async function ask(
    r: Rollout,
    key: string,
    hooks: Webhook[],
    call: (w: Webhook) => Promise<{ yes: boolean; message: string }>,
    combine: (results: { yes: boolean; message: string }[]) => { yes: boolean; message: string },
  ): Promise<void> {
    const longest = Math.max(...hooks.map((w) => w.timeout));
    if (!(await store.claimCall(r.id, key, longest + CLAIM_MARGIN_MS))) return;
    void Promise.all(hooks.map(call))
      .then((results) => {
        const answer: WebhookAnswer = { ...combine(results), at: Date.now() };
        // fresh enough for the next tick or two; a rollout held longer (paused) asks again
        return store.storeAnswer(
          r.id,
          key,
          answer,
          Math.max(ANSWER_TTL_MS, 3 * r.spec.analysis.guardInterval),
        );
      })
      .catch((e: Error) => opts.onError?.(e));
  }

  const withMetadata = (w: Webhook, payload: ReturnType<typeof buildPayload>) => ({
    ...payload,
    metadata: { ...payload.metadata, ...(w.metadata ?? {}) },
  });

  return {
    keyOf(name: GateName, stageIndex: number): string {
      return name === 'pre-rollout' ? 'pre-rollout' : gateKey(name, stageIndex);
    },

    applies(r: Rollout, name: GateName): boolean {
      return r.spec.webhooks.some((w) => w.type === name);
    },

    async check(r: Rollout, name: GateName, stageIndex: number) {
      const key = this.keyOf(name, stageIndex);
      if (name !== 'pre-rollout') {
        const approval = await store.peekApproval(r.id, key);
        if (approval) {
          return {
            open: true,
            by: approval.by,
            message: `${key} approved by ${approval.by}${approval.reason ? `: ${approval.reason}` : ''}`,
            consume: [store.approvalKey(r.id, key)],
          };
        }
      }
      const hooks = r.spec.webhooks.filter((w) => w.type === name);
      if (hooks.length === 0) return { open: false, message: `${key} waits for an approval` };
      const stored = await store.peekAnswer(r.id, key);
      // An answer is used once (deleted with the state it led to); the next check asks again.
      if (stored) return { open: stored.answer.yes, message: stored.answer.message, consume: [stored.key] };
      const payload = buildPayload(r, name, { gate: key });
      await ask(
        r,
        key,
        hooks,
        async (w) => {
          const g = await checkGate(w, withMetadata(w, payload), { secrets });
          return { yes: g.open, message: g.message };
        },
        (results) => {
          const closed = results.filter((x) => !x.yes);
          return closed.length === 0
            ? { yes: true, message: results.map((x) => x.message).join('; ') }
            : { yes: false, message: closed.map((x) => x.message).join('; ') };
        },
      );
      return { open: false, pending: true, message: `${key}: waiting for the answer of its webhook` };
    },

    async rollbackRequested(r: Rollout) {
      const hooks = r.spec.webhooks.filter((w) => w.type === 'rollback');
      if (hooks.length === 0) return undefined;
      const answer = await store.takeAnswer(r.id, 'rollback');
      if (answer?.yes) return answer.message;
      const payload = buildPayload(r, 'rollback');
      await ask(
        r,
        'rollback',
        hooks,
        async (w) => {
          const x = await checkRollbackRequest(w, payload, { secrets });
          return { yes: x.rollback, message: x.message };
        },
        (results) => results.find((x) => x.yes) ?? { yes: false, message: 'no rollback asked' },
      );
      return undefined;
    },
  };
}
