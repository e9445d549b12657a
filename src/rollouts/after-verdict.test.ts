import { describe, expect, it } from 'vitest';
import { planAfter } from './after-verdict.ts';
import { kubeReasonOf } from './kube-events.ts';
import type { Rollout } from './model.ts';
import { commandRefusal } from './phases.ts';
import { describeZodError, RolloutSpecSchema } from './spec.ts';

const input = (over: Record<string, unknown> = {}, strategy: Record<string, unknown> = {}) => ({
  target: { namespace: 'shop', virtualService: 'reviews', destinationRule: 'reviews' },
  stable: { subset: 'v1', workload: { name: 'reviews-v1' } },
  canary: { subset: 'v2', labels: { version: 'v2' }, workload: { name: 'reviews-v2' } },
  strategy: { type: 'canary', steps: [50], ...strategy },
  ...over,
});

const errors = (x: unknown) => {
  const r = RolloutSpecSchema.safeParse(x);
  return r.success ? [] : describeZodError(r.error).map((e) => `${e.path}: ${e.message}`);
};

function rollout(phase: Rollout['phase'], spec: unknown, after?: Rollout['after']): Rollout {
  return {
    phase,
    spec: RolloutSpecSchema.parse(spec),
    ...(after ? { after } : {}),
  } as Rollout;
}

describe('the after-verdict spec', () => {
  it('scaleDownDelay: 30m by default, a duration, 0 or never; anything else names the field', () => {
    const delay = (d?: unknown) =>
      RolloutSpecSchema.parse(input({}, d === undefined ? {} : { scaleDownDelay: d })).strategy
        .scaleDownDelay;
    expect(delay()).toBe(1_800_000);
    expect(delay('2s')).toBe(2_000);
    expect(delay(0)).toBe(0);
    expect(delay('0')).toBe(0);
    expect(delay('never')).toBe('never');
    expect(errors(input({}, { scaleDownDelay: 'soon' }))).toEqual([
      'strategy.scaleDownDelay: a duration such as 30m, 0 (at once) or never',
    ]);
    expect(errors(input({}, { scaleDownDelay: '1000h' }))).toEqual([
      'strategy.scaleDownDelay: at most 720h (30 days); or never',
    ]);
  });

  it('stable.workload and canary.scaleDownOnFailure are strict', () => {
    const s = RolloutSpecSchema.parse(input());
    expect(s.stable.workload).toEqual({ kind: 'Deployment', name: 'reviews-v1' });
    expect(s.canary.scaleDownOnFailure).toBe(false);
    expect(errors(input({ stable: { subset: 'v1', workload: { name: 'reviews-v1', replica: 2 } } }))).toEqual(
      [expect.stringMatching(/^stable\.workload\.replica: unknown field/)],
    );
    expect(
      errors(input({ stable: { subset: 'v1', workload: { kind: 'StatefulSet', name: 'x' } } }))[0],
    ).toMatch(/^stable\.workload\.kind: /);
    expect(
      errors(input({ canary: { subset: 'v2', labels: { version: 'v2' }, scaleDownOnFailur: true } }))[0],
    ).toMatch(/^canary\.scaleDownOnFailur: unknown field; did you mean scaleDownOnFailure\?/);
  });
});

describe('planAfter', () => {
  const now = 1_000_000;
  it('after success: schedules the old version at now + delay, or keeps it (never); nothing without stable.workload', () => {
    expect(planAfter(rollout('succeeded', input({}, { scaleDownDelay: '2s' })), now)?.after).toEqual({
      state: 'scheduled',
      workload: 'Deployment shop/reviews-v1',
      scaleDownAt: now + 2_000,
    });
    expect(planAfter(rollout('succeeded', input({}, { scaleDownDelay: 'never' })), now)?.after).toEqual({
      state: 'kept',
      workload: 'Deployment shop/reviews-v1',
    });
    expect(planAfter(rollout('succeeded', input({ stable: { subset: 'v1' } })), now)).toBeUndefined();
  });

  it('after a rollback: the canary only with scaleDownOnFailure, at once', () => {
    expect(planAfter(rollout('aborted', input()), now)).toBeUndefined();
    const on = input({
      canary: {
        subset: 'v2',
        labels: { version: 'v2' },
        workload: { name: 'reviews-v2' },
        scaleDownOnFailure: true,
      },
    });
    expect(planAfter(rollout('failed', on), now)?.after).toEqual({
      state: 'scheduled',
      workload: 'Deployment shop/reviews-v2',
      scaleDownAt: now,
    });
  });
});

describe('undo in the command table', () => {
  it('applies to a succeeded rollout with stable.workload, once', () => {
    expect(commandRefusal(rollout('succeeded', input()), 'undo')).toBeUndefined();
    expect(commandRefusal(rollout('succeeded', input(), { state: 'scaled-down' }), 'undo')).toBeUndefined();
    expect(commandRefusal(rollout('succeeded', input(), { state: 'undo-failed' }), 'undo')).toBeUndefined();
    expect(commandRefusal(rollout('progressing', input()), 'undo')).toBe(
      'it is progressing; undo applies when it is succeeded',
    );
    expect(commandRefusal(rollout('succeeded', input({ stable: { subset: 'v1' } })), 'undo')).toMatch(
      /names no stable\.workload/,
    );
    expect(commandRefusal(rollout('succeeded', input(), { state: 'undoing' }), 'undo')).toBe(
      'an undo is already running',
    );
    expect(commandRefusal(rollout('succeeded', input(), { state: 'undone' }), 'undo')).toBe(
      'it was undone already',
    );
  });
});

describe('Kubernetes Event reasons', () => {
  const e = (x: Record<string, unknown>) => kubeReasonOf({ time: 0, reason: '', ...x } as never);
  it('maps transitions and weight changes to Progressing / Promoted / RolledBack / Paused / Undone', () => {
    expect(e({ type: 'transition', from: 'pending', to: 'initializing' })).toEqual({ reason: 'Progressing' });
    expect(e({ type: 'transition', to: 'paused' })).toEqual({ reason: 'Paused' });
    expect(e({ type: 'transition', to: 'succeeded' })).toEqual({ reason: 'Promoted' });
    expect(e({ type: 'transition', to: 'failed' })).toEqual({ reason: 'RolledBack', warning: true });
    expect(e({ type: 'weight', reason: 'step 1 of 5: canary 10%' })).toEqual({ reason: 'Progressing' });
    expect(e({ type: 'weight', reason: 'rolled back to stable' })).toEqual({
      reason: 'RolledBack',
      warning: true,
    });
    expect(e({ type: 'undo', reason: "100% back to subset 'v1'" })).toEqual({ reason: 'Undone' });
    expect(e({ type: 'analysis', reason: 'analysis: pass' })).toBeUndefined();
  });
});
