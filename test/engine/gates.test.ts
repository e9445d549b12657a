import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { validateSlackMessage } from '../../src/notify/slack.ts';
import { approveGate, getRollout, rolloutEvents, startRollout } from '../../src/rollouts/verbs.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import {
  canarySpec,
  canaryWeightOf,
  type EngineHarness,
  FakeSuccessRate,
  seedTarget,
  startEngineHarness,
  VS,
} from '../helpers/engine.ts';
import { eventually, startTestRedis } from '../helpers/services.ts';
import { Receiver, receiverVerifies } from '../notify/fixtures.ts';

const SECRET = 'gate-secret-for-tests';
let redis: ManagedProcess;
let h: EngineHarness;
let rx: Receiver;
const provider = new FakeSuccessRate();

beforeAll(async () => {
  redis = await startTestRedis();
  h = await startEngineHarness({
    redisUrl: redis.url,
    provider,
    notify: { secrets: { VANE_SECRET_GATE: SECRET } },
  });
  rx = await new Receiver().start();
});
afterAll(async () => {
  await h?.close();
  await rx?.stop();
  await redis?.stop();
});
beforeEach(() => provider.rates.clear());

const weight = (name: string) => canaryWeightOf(h.sim.getObject(VS, 'VirtualService', 'shop', name));
const phaseOf = async (id: string) => (await getRollout({ ctx: h.domain.ctx, id })).phase;

describe('gates, approvals and notifications in the engine', () => {
  it('a closed confirm-promotion webhook holds at max weight while analysis goes on; a 2xx promotes', async () => {
    seedTarget(h.sim, 'g1');
    let open = false;
    rx.on('/g1/promote', () => (open ? 200 : { status: 403, body: JSON.stringify({ reason: 'not yet' }) }));
    const { rollout } = await startRollout({
      ctx: h.domain.ctx,
      input: canarySpec('g1', {
        strategy: { type: 'canary', steps: [20, 50], stepInterval: '500ms' },
        webhooks: [
          {
            type: 'confirm-promotion',
            url: rx.url('/g1/promote'),
            secretEnv: 'VANE_SECRET_GATE',
            timeout: '2s',
          },
        ],
      }),
    });
    await eventually(async () => ((await phaseOf(rollout.id)) === 'awaiting-promotion' ? true : undefined));
    const heldAt = Date.now();
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await phaseOf(rollout.id)).toBe('awaiting-promotion');
    expect(weight('g1')).toBe(50);
    const asks = rx.received.filter((r) => r.path === '/g1/promote');
    expect(asks.length).toBeGreaterThanOrEqual(2);
    for (const a of asks) expect(receiverVerifies(SECRET, a.headers, a.raw)).toBe(true);
    expect(asks[0]!.body).toMatchObject({
      id: rollout.id,
      type: 'confirm-promotion',
      weights: { canary: 50 },
    });
    // the guard checks go on while held
    const guardQueries = provider.queries;
    await new Promise((r) => setTimeout(r, 600));
    expect(provider.queries).toBeGreaterThan(guardQueries);

    open = true;
    const done = await h.settle(rollout.id);
    expect(done.phase).toBe('succeeded');
    expect(done.endedAt).toBeGreaterThan(heldAt + 1_500);
    const events = await rolloutEvents({ ctx: h.domain.ctx, id: rollout.id });
    expect(events.filter((e) => e.type === 'gate').map((e) => e.reason)).toEqual([
      expect.stringMatching(
        /^waiting at confirm-promotion: confirm-promotion webhook to .* answered 403: not yet/,
      ),
      expect.stringMatching(/^confirm-promotion open: /),
    ]);
  });

  it('an approval opens one step of a confirm-traffic-increase gate once; the next step waits again', async () => {
    seedTarget(h.sim, 'g2');
    rx.on('/g2/step', () => 503);
    const { rollout } = await startRollout({
      ctx: h.domain.ctx,
      input: canarySpec('g2', {
        strategy: { type: 'canary', steps: [10, 20, 30], stepInterval: '300ms' },
        webhooks: [{ type: 'confirm-traffic-increase', url: rx.url('/g2/step'), timeout: '1s' }],
      }),
    });
    const waiting = await eventually(async () => {
      const r = await getRollout({ ctx: h.domain.ctx, id: rollout.id });
      return r.gate ? r : undefined;
    });
    expect(waiting.gate?.key).toBe('confirm-traffic-increase:0');
    expect(weight('g2')).toBeUndefined();

    const { gate } = await approveGate({
      ctx: h.domain.ctx,
      id: rollout.id,
      by: 'dana',
      reason: 'looks fine',
    });
    expect(gate).toBe('confirm-traffic-increase:0');
    await eventually(async () => (weight('g2') === 10 ? true : undefined));
    const next = await eventually(async () => {
      const r = await getRollout({ ctx: h.domain.ctx, id: rollout.id });
      return r.gate?.key === 'confirm-traffic-increase:1' ? r : undefined;
    });
    expect(next.phase).toBe('progressing');
    await new Promise((r) => setTimeout(r, 800));
    expect(weight('g2')).toBe(10); // the approval of step 0 did not open step 1

    // approving a gate the rollout is not at: refused with the fix
    await expect(approveGate({ ctx: h.domain.ctx, id: rollout.id, gate: 'nonsense' })).rejects.toThrow(
      /gate: 'nonsense' is not a gate/,
    );
    rx.on('/g2/step', () => 200);
    expect((await h.settle(rollout.id)).phase).toBe('succeeded');
    const events = await rolloutEvents({ ctx: h.domain.ctx, id: rollout.id });
    expect(
      events.some((e) => e.type === 'gate' && e.by === 'dana' && /approved by dana/.test(e.reason)),
    ).toBe(true);
  });

  it('a gate closed past its deadline rolls back with the reason', async () => {
    seedTarget(h.sim, 'g3');
    rx.on('/g3/start', () => 'hang');
    const { rollout } = await startRollout({
      ctx: h.domain.ctx,
      input: canarySpec('g3', {
        analysis: { guardInterval: '250ms', minRequests: 0, deadlines: { gate: '1500ms' } },
        webhooks: [{ type: 'confirm-rollout', url: rx.url('/g3/start'), timeout: '300ms' }],
      }),
    });
    const done = await h.settle(rollout.id);
    expect(done.phase).toBe('failed');
    expect(done.reason).toMatch(
      /^gate confirm-rollout still closed after 1500ms: confirm-rollout webhook to .* unreachable/,
    );
    expect(h.weightWrites('g3').filter((w) => w !== undefined)).toEqual([]);
  });

  it('a rollback webhook answering 2xx rolls back; event webhooks and Slack hear about it, and each delivery is an event', async () => {
    seedTarget(h.sim, 'g4');
    let bad = false;
    rx.on('/g4/rollback', () => (bad ? 200 : 404));
    const { rollout } = await startRollout({
      ctx: h.domain.ctx,
      input: canarySpec('g4', {
        strategy: { type: 'canary', steps: [10, 20, 30, 40], stepInterval: '1s' },
        webhooks: [
          { type: 'rollback', url: rx.url('/g4/rollback'), timeout: '1s' },
          { type: 'event', name: 'audit', url: rx.url('/g4/events'), secretEnv: 'VANE_SECRET_GATE' },
        ],
        notifications: [{ type: 'slack', url: rx.url('/g4/slack'), severity: 'warn' }],
      }),
    });
    await eventually(async () => ((weight('g4') ?? 0) >= 20 ? true : undefined));
    bad = true;
    const done = await h.settle(rollout.id);
    expect(done.phase).toBe('failed');
    expect(done.reason).toMatch(/^rollback requested: rollback webhook to .* answered 200/);

    const slack = await eventually(async () => {
      const m = rx.received.filter((r) => r.path === '/g4/slack');
      return m.some((x) => /rolled back|failed/.test(JSON.stringify(x.body))) ? m : undefined;
    });
    for (const m of slack) expect(validateSlackMessage(m.body)).toEqual([]);
    const events = await eventually(async () => {
      const got = rx.received.filter((r) => r.path === '/g4/events');
      return got.some((x) => (x.body as { phase?: string }).phase === 'failed') ? got : undefined;
    });
    for (const e of events) expect(receiverVerifies(SECRET, e.headers, e.raw)).toBe(true);
    const history = await eventually(async () => {
      const ev = await rolloutEvents({ ctx: h.domain.ctx, id: rollout.id });
      return ev.some((e) => e.type === 'notification' && /slack/.test(e.reason)) ? ev : undefined;
    });
    expect(history.some((e) => e.type === 'notification' && /audit/.test(e.reason))).toBe(true);
  });
});
