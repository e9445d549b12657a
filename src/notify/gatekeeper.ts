import type { GateKeeper, GateName } from '../rollouts/context.ts';
import type { Rollout } from '../rollouts/model.ts';
import { checkGate, checkRollbackRequest, type GateStore, gateKey } from './gates.ts';
import { buildPayload } from './payload.ts';
import { type SecretLookup, secretResolver } from './signing.ts';

/**
 * The engine's gates: a gate is open when an approval for it is waiting (taken, so it opens this
 * gate once) or when every webhook of its type answers 2xx. `rollback` webhooks are asked whether
 * to roll back. Each call is bounded by the webhook's own timeout.
 */
export function createGateKeeper(opts: { store: GateStore; secrets?: SecretLookup }): GateKeeper {
  const secrets = secretResolver(opts.secrets);
  return {
    keyOf(name: GateName, stageIndex: number): string {
      return name === 'pre-rollout' ? 'pre-rollout' : gateKey(name, stageIndex);
    },

    applies(r: Rollout, name: GateName): boolean {
      return r.spec.webhooks.some((w) => w.type === name);
    },

    async check(r: Rollout, name: GateName, stageIndex: number, signal?: AbortSignal) {
      const key = this.keyOf(name, stageIndex);
      if (name !== 'pre-rollout') {
        const approval = await opts.store.consumeApproval(r.id, key);
        if (approval) {
          return {
            open: true,
            by: approval.by,
            message: `${key} approved by ${approval.by}${approval.reason ? `: ${approval.reason}` : ''}`,
          };
        }
      }
      const hooks = r.spec.webhooks.filter((w) => w.type === name);
      if (hooks.length === 0) return { open: false, message: `${key} waits for an approval` };
      const payload = buildPayload(r, name, { gate: key });
      const results = await Promise.all(
        hooks.map((w) =>
          checkGate(
            w,
            { ...payload, metadata: { ...payload.metadata, ...(w.metadata ?? {}) } },
            {
              secrets,
              ...(signal ? { signal } : {}),
            },
          ),
        ),
      );
      const closed = results.filter((x) => !x.open);
      return closed.length === 0
        ? { open: true, message: results.map((x) => x.message).join('; ') }
        : { open: false, message: closed.map((x) => x.message).join('; ') };
    },

    async rollbackRequested(r: Rollout, signal?: AbortSignal) {
      const hooks = r.spec.webhooks.filter((w) => w.type === 'rollback');
      if (hooks.length === 0) return undefined;
      const payload = buildPayload(r, 'rollback');
      const results = await Promise.all(
        hooks.map((w) => checkRollbackRequest(w, payload, { secrets, ...(signal ? { signal } : {}) })),
      );
      return results.find((x) => x.rollback)?.message;
    },
  };
}
