import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApp } from '../../src/api/app.ts';
import { SLACK_ACTIONS, type SlackMessage, validateSlackMessage } from '../../src/notify/slack.ts';
import { getRollout, rolloutEvents, startRollout } from '../../src/rollouts/verbs.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import {
  canarySpec,
  type EngineHarness,
  FakeSuccessRate,
  seedTarget,
  startEngineHarness,
} from '../helpers/engine.ts';
import { eventually, startTestRedis } from '../helpers/services.ts';
import { Receiver } from '../notify/fixtures.ts';

const SECRET = 'slack-secret-for-the-gate-test';
const OPERATOR = 'U0OPS';

let redis: ManagedProcess;
let h: EngineHarness;
let rx: Receiver;

beforeAll(async () => {
  redis = await startTestRedis();
  h = await startEngineHarness({ redisUrl: redis.url, provider: new FakeSuccessRate(), notify: {} });
  rx = await new Receiver().start();
});
afterAll(async () => {
  await h?.close();
  await rx?.stop();
  await redis?.stop();
});

describe('a gate approved from Slack, end to end (engine, kube simulator, real Redis)', () => {
  it("the engine's gate notification carries buttons; clicking Approve on it promotes the rollout, recorded as the Slack user", async () => {
    seedTarget(h.sim, 'sg1');
    rx.on('/sg1/promote', () => ({ status: 403, body: 'waiting for a human' }));
    const { rollout } = await startRollout({
      ctx: h.domain.ctx,
      input: canarySpec('sg1', {
        strategy: { type: 'canary', steps: [20, 50], stepInterval: '300ms' },
        webhooks: [{ type: 'confirm-promotion', url: rx.url('/sg1/promote'), timeout: '1s' }],
        notifications: [{ type: 'slack', url: rx.url('/sg1/slack'), events: ['gate'] }],
      }),
    });
    // The notification of the held gate, as Slack would receive it.
    const message = await eventually(async () => {
      const m = rx.received.find(
        (r) => r.path === '/sg1/slack' && JSON.stringify(r.body).includes(SLACK_ACTIONS.approve),
      );
      return m?.body as SlackMessage | undefined;
    }, 30_000);
    expect(validateSlackMessage(message)).toEqual([]);
    expect(message.text).toContain('waiting at confirm-promotion');
    const actions = message.blocks?.find((b) => b.type === 'actions');
    if (actions?.type !== 'actions') throw new Error('no buttons');
    const approve = actions.elements.find((e) => e.action_id === SLACK_ACTIONS.approve)!;

    const app = newApp({
      logger: h.domain.ctx.logger,
      recorder: h.domain.ctx.recorder,
      readiness: [],
      domain: h.domain.ctx,
      apiTokens: ['unused'],
      doors: { slackSigningSecret: SECRET, slackOperators: [OPERATOR] },
    });
    const body = new URLSearchParams({
      payload: JSON.stringify({
        type: 'block_actions',
        user: { id: OPERATOR, username: 'dana' },
        actions: [{ action_id: approve.action_id, value: approve.value, type: 'button' }],
        message,
      }),
    }).toString();
    const ts = String(Math.floor(Date.now() / 1000));
    const res = await app.request('/api/v1/chatops/slack/interactive', {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-www-form-urlencoded',
        'X-Slack-Request-Timestamp': ts,
        'X-Slack-Signature': `v0=${createHmac('sha256', SECRET).update(`v0:${ts}:${body}`).digest('hex')}`,
      },
      body,
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { text: string }).text).toContain('approved confirm-promotion');

    const done = await h.settle(rollout.id);
    expect(done.phase).toBe('succeeded');
    const gates = (await rolloutEvents({ ctx: h.domain.ctx, id: rollout.id })).filter(
      (e) => e.type === 'gate',
    );
    expect(gates.map((e) => e.reason)).toContainEqual(
      `approval of confirm-promotion stored by slack:${OPERATOR} (dana)`,
    );
    expect(gates.at(-1)).toMatchObject({ by: `slack:${OPERATOR} (dana)` });
    expect((await getRollout({ ctx: h.domain.ctx, id: rollout.id })).phase).toBe('succeeded');
  });
});
