import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, newApp } from '../../src/api/app.ts';
import { GateStore } from '../../src/notify/gates.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { buildTestDomain, type TestDomain } from '../helpers/domain.ts';
import { startTestRedis } from '../helpers/services.ts';

const CI = 'fuzz-ci-secret-0123456789';
const SLACK = 'fuzz-slack-secret';
const hmac = (secret: string, data: string) => createHmac('sha256', secret).update(data).digest('hex');

/** Every answer of a door is JSON: the error envelope, a rollout, or a Slack reply; never a 5xx. */
async function expectWellFormed(res: Response) {
  expect(res.status).toBeLessThan(500);
  const body = (await res.json()) as Record<string, unknown>;
  if (res.status >= 400) {
    const e = body.error as { code: string; message: string; requestId: string };
    expect(typeof e.code).toBe('string');
    expect(e.message.length).toBeGreaterThan(0);
    expect(e.requestId).toBeTruthy();
  } else {
    expect('rollout' in body || typeof body.response_type === 'string').toBe(true);
  }
}

describe('the doors under malformed input (fast-check, real Redis)', () => {
  let redis: ManagedProcess;
  let domain: TestDomain;
  let app: App;
  beforeAll(async () => {
    redis = await startTestRedis();
    domain = buildTestDomain({ redisUrl: redis.url, templates: { web: { stable: { subset: 'v1' } } } });
    domain.ctx.approvals = new GateStore(domain.redis, domain.prefix);
    app = newApp({
      logger: domain.ctx.logger,
      recorder: domain.ctx.recorder,
      readiness: [],
      domain: domain.ctx,
      apiTokens: ['tok'],
      doors: { ciWebhookSecret: CI, slackSigningSecret: SLACK, slackOperators: ['U1'] },
    });
  });
  afterAll(async () => {
    await domain?.close();
    await redis?.stop();
  });

  const header = fc.oneof(
    fc.string(),
    fc.constantFrom('sha256=', 'v0=', 'v1=', `sha256=${'a'.repeat(64)}`, '0', '-1', '99999999999999'),
  );
  const path = fc.constantFrom(
    '/api/v1/hooks/ci',
    '/api/v1/chatops/slack',
    '/api/v1/chatops/slack/interactive',
  );

  it('unsigned or badly signed requests: 401/400/404 in the envelope', async () => {
    await fc.assert(
      fc.asyncProperty(
        path,
        fc.string({ maxLength: 300 }),
        fc.record(
          {
            'x-hub-signature-256': header,
            'x-vane-timestamp': header,
            'x-vane-signature': header,
            'x-slack-request-timestamp': header,
            'x-slack-signature': header,
            'content-type': fc.constantFrom(
              'application/json',
              'application/x-www-form-urlencoded',
              'text/plain',
            ),
          },
          { requiredKeys: [] },
        ),
        async (p, body, headers) => {
          const res = await app.request(p, { method: 'POST', headers, body });
          expect([400, 401]).toContain(res.status);
          await expectWellFormed(res);
        },
      ),
      { numRuns: 600 },
    );
  });

  it('correctly signed CI bodies of any shape: never a 5xx', async () => {
    const json = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.json({ maxDepth: 4 }),
      fc
        .record(
          {
            template: fc.oneof(fc.constant('web'), fc.string({ maxLength: 20 })),
            canary: fc.oneof(fc.jsonValue(), fc.record({ labels: fc.dictionary(fc.string(), fc.string()) })),
            idempotencyKey: fc.oneof(fc.string({ maxLength: 30 }), fc.integer()),
            metadata: fc.oneof(fc.jsonValue(), fc.dictionary(fc.string(), fc.string())),
          },
          { requiredKeys: [] },
        )
        .map((o) => JSON.stringify(o)),
    );
    await fc.assert(
      fc.asyncProperty(json, async (body) => {
        const res = await app.request('/api/v1/hooks/ci', {
          method: 'POST',
          headers: { 'X-Hub-Signature-256': `sha256=${hmac(CI, body)}` },
          body,
        });
        await expectWellFormed(res);
      }),
      { numRuns: 500 },
    );
  });

  it('correctly signed Slack commands and clicks of any shape: a Slack reply or a 4xx, never a 5xx', async () => {
    const words = fc.array(
      fc.oneof(
        fc.constantFrom(
          'list',
          'status',
          'promote',
          'approve',
          'abort',
          'pause',
          'resume',
          'help',
          'ro-abc',
          'confirm-promotion',
        ),
        fc.string({ maxLength: 12 }),
      ),
      { maxLength: 5 },
    );
    const form = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc
        .record({ text: words.map((w) => w.join(' ')), user_id: fc.constantFrom('U1', 'U2', 'x', '') })
        .map((f) => new URLSearchParams(f).toString()),
    );
    const click = fc
      .oneof(
        fc.jsonValue(),
        fc.record({
          type: fc.constantFrom('block_actions', 'view_submission'),
          user: fc.record({ id: fc.constantFrom('U1', 'U2', '') }),
          actions: fc.array(
            fc.record({ action_id: fc.constantFrom('vane-approve', 'vane-abort', 'x'), value: fc.string() }),
            { maxLength: 2 },
          ),
        }),
      )
      .map((p) => new URLSearchParams({ payload: JSON.stringify(p) }).toString());
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          form.map((b) => ['/api/v1/chatops/slack', b] as const),
          click.map((b) => ['/api/v1/chatops/slack/interactive', b] as const),
        ),
        async ([p, body]) => {
          const ts = String(Math.floor(Date.now() / 1000));
          const res = await app.request(p, {
            method: 'POST',
            headers: {
              'X-Slack-Request-Timestamp': ts,
              'X-Slack-Signature': `v0=${hmac(SLACK, `v0:${ts}:${body}`)}`,
            },
            body,
          });
          await expectWellFormed(res);
        },
      ),
      { numRuns: 600 },
    );
  });

  it('malformed after / Last-Event-ID on the event routes: 400 in the envelope', async () => {
    const bad = fc
      .string({ maxLength: 40 })
      .filter((s) => s.trim() !== '' && !/^\d{1,16}-\d{1,16}(@ro-[a-f0-9]{1,40})?$/.test(s.trim()));
    await fc.assert(
      fc.asyncProperty(
        bad,
        fc.boolean(),
        fc.constantFrom('/api/v1/events', '/api/v1/rollouts/ro-1/events'),
        async (id, asHeader, p) => {
          const res = await app.request(asHeader ? p : `${p}?after=${encodeURIComponent(id)}`, {
            headers: {
              Authorization: 'Bearer tok',
              Accept: 'text/event-stream',
              ...(asHeader ? { 'Last-Event-ID': id.replace(/[\r\n\0]/g, 'x') } : {}),
            },
          });
          expect(res.status).toBe(400);
          await expectWellFormed(res);
        },
      ),
      { numRuns: 400 },
    );
  });
});
