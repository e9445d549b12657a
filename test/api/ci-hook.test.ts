import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { type ServerType, serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, newApp } from '../../src/api/app.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { buildTestDomain, type TestDomain } from '../helpers/domain.ts';
import { startTestRedis } from '../helpers/services.ts';

const SECRET = 'ci-secret-0123456789abcdef';
const run = promisify(execFile);
const hex = (secret: string, data: string | Buffer) =>
  createHmac('sha256', secret).update(data).digest('hex');

type Envelope = { error: { code: string; message: string; requestId: string } };
type RolloutBody = { rollout: { id: string; spec: { metadata: Record<string, string>; canary: unknown } } };

describe('POST /api/v1/hooks/ci (real Redis)', () => {
  let redis: ManagedProcess;
  let domain: TestDomain;
  let app: App;
  let closed: App;
  beforeAll(async () => {
    redis = await startTestRedis();
    domain = buildTestDomain({
      redisUrl: redis.url,
      templates: {
        reviews: {
          target: { namespace: 'bookinfo', virtualService: 'reviews', destinationRule: 'reviews' },
          stable: { subset: 'v1' },
          canary: { subset: 'v2' },
          strategy: { type: 'canary', steps: [50] },
        },
        ratings: {
          target: { namespace: 'bookinfo', virtualService: 'ratings', destinationRule: 'ratings' },
          stable: { subset: 'v1' },
          strategy: { type: 'canary', steps: [50] },
        },
        details: {
          target: { namespace: 'bookinfo', virtualService: 'details', destinationRule: 'details' },
          stable: { subset: 'v1' },
          canary: { subset: 'v2' },
          strategy: { type: 'canary', steps: [50] },
        },
      },
    });
    const base = {
      logger: domain.ctx.logger,
      recorder: domain.ctx.recorder,
      readiness: [],
      domain: domain.ctx,
    };
    // Bearer tokens are configured: the signed door must not ask for one.
    app = newApp({ ...base, apiTokens: ['api-token-1'], doors: { ciWebhookSecret: SECRET } });
    closed = newApp({ ...base, apiTokens: ['api-token-1'] });
  });
  afterAll(async () => {
    await domain?.close();
    await redis?.stop();
  });

  const hub = (body: string, headers: Record<string, string> = {}, target = app) =>
    target.request('/api/v1/hooks/ci', {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'X-Hub-Signature-256': `sha256=${hex(SECRET, body)}`,
        ...headers,
      },
      body,
    });
  const vane = (body: string, ts: number, secret = SECRET) =>
    app.request('/api/v1/hooks/ci', {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'X-Vane-Timestamp': String(ts),
        'X-Vane-Signature': `v1=${hex(secret, `${ts}.${body}`)}`,
      },
      body,
    });
  const error = async (res: Response) => ((await res.json()) as Envelope).error;
  const storedCount = async () => (await domain.ctx.store.list({ limit: 500 })).length;

  it('starts a rollout from a template (201), the same key again gives it back (200), a busy target 409', async () => {
    const body = JSON.stringify({
      template: 'reviews',
      canary: { labels: { version: 'v2' } },
      idempotencyKey: 'ci-run-101',
      metadata: { commit: 'abc123', triggeredBy: 'mallory' },
    });
    const res = await hub(body);
    expect(res.status).toBe(201);
    const { rollout } = (await res.json()) as RolloutBody;
    expect(res.headers.get('Location')).toBe(`/api/v1/rollouts/${rollout.id}`);
    // The acting identity is the door; the caller's own claim is only a note.
    expect(rollout.spec.metadata).toMatchObject({
      triggeredBy: 'ci-webhook',
      requestedBy: 'mallory',
      commit: 'abc123',
    });
    const events = await domain.ctx.store.events(rollout.id);
    expect(events[0]?.reason).toBe('rollout created by ci-webhook');

    const again = await hub(body);
    expect(again.status).toBe(200);
    expect(((await again.json()) as RolloutBody).rollout.id).toBe(rollout.id);

    const busy = await hub(
      JSON.stringify({
        template: 'reviews',
        canary: { labels: { version: 'v3' } },
        idempotencyKey: 'ci-run-102',
      }),
    );
    expect(busy.status).toBe(409);
    const e = await error(busy);
    expect(e.code).toBe('TARGET_BUSY');
    expect(e.message).toContain(`held by active rollout ${rollout.id}`);
  });

  it('accepts the timestamped X-Vane-Signature scheme and refuses its replays outside 5 minutes', async () => {
    const body = JSON.stringify({
      template: 'ratings',
      canary: { subset: 'v9', labels: { version: 'v9' } },
      idempotencyKey: 'ci-run-201',
    });
    const now = Math.floor(Date.now() / 1000);
    const stale = await vane(body, now - 301);
    expect(stale.status).toBe(401);
    expect((await error(stale)).message).toMatch(/X-Vane-Signature: timestamp is 30\ds away.*replayed/);
    expect((await vane(body, now + 400)).status).toBe(401);
    expect((await vane(body, now, 'not-the-secret')).status).toBe(401);
    const ok = await vane(body, now - 60);
    expect(ok.status).toBe(201);
  });

  it('refuses a missing or wrong signature with 401 before reading the body, and stores nothing', async () => {
    const before = await storedCount();
    const body = JSON.stringify({
      template: 'reviews',
      canary: { labels: { version: 'v7' } },
      idempotencyKey: 'x-1',
    });
    const none = await app.request('/api/v1/hooks/ci', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body,
    });
    expect(none.status).toBe(401);
    const e = await error(none);
    expect(e.code).toBe('UNAUTHORIZED');
    expect(e.message).toContain('X-Hub-Signature-256');
    expect(e.message).toContain('VANE_CI_WEBHOOK_SECRET');
    const wrong = await hub(body, { 'X-Hub-Signature-256': `sha256=${hex('guess', body)}` });
    expect(wrong.status).toBe(401);
    expect((await error(wrong)).message).toBe('X-Hub-Signature-256 does not match the body');
    // A bearer token is no substitute for the signature.
    const bearer = await app.request('/api/v1/hooks/ci', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer api-token-1' },
      body,
    });
    expect(bearer.status).toBe(401);
    // Not even a malformed body is looked at before the signature: 401, not 400.
    const garbage = await app.request('/api/v1/hooks/ci', { method: 'POST', body: '{"template":' });
    expect(garbage.status).toBe(401);
    expect(await storedCount()).toBe(before);
  });

  it('answers 400 naming the field for a signed but bad body', async () => {
    const cases: [unknown, RegExp][] = [
      [
        {
          template: 'reviews',
          canary: { labels: { version: 'v2' } },
          idempotencyKey: 'k',
          stepIntervl: '1h',
        },
        /^stepIntervl: unknown field; fields are: template, canary, idempotencyKey, metadata$/,
      ],
      [
        { template: 'reviews', canary: { lables: { version: 'v2' } }, idempotencyKey: 'k' },
        /^canary\.lables: unknown field; did you mean labels\?$/,
      ],
      [{ template: 'reviews', canary: { labels: { version: 'v2' } } }, /^idempotencyKey: required/],
      [{ template: 'reviews', canary: {}, idempotencyKey: 'k' }, /^canary: give labels, subset or both$/],
      [
        { template: 'nope', canary: { labels: { version: 'v2' } }, idempotencyKey: 'k' },
        /^template: no template named 'nope'; templates are: details, ratings, reviews/,
      ],
      [
        {
          template: 'reviews',
          canary: { labels: { version: 'v2' } },
          idempotencyKey: 'k',
          metadata: Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v'])),
        },
        /^metadata: at most 50 keys$/,
      ],
      [[1, 2], /^body: /],
    ];
    for (const [body, message] of cases) {
      const res = await hub(JSON.stringify(body));
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      const e = await error(res);
      expect(e.code).toBe('BAD_REQUEST');
      expect(e.message).toMatch(message);
    }
    const notJson = await hub('{"template":');
    expect(notJson.status).toBe(400);
    expect((await error(notJson)).message).toMatch(/^body: not valid JSON/);
    const big = await hub(JSON.stringify({ template: 'reviews', pad: 'x'.repeat(300_000) }));
    expect(big.status).toBe(400);
    expect((await error(big)).message).toMatch(/^body: at most 262144 bytes/);
  });

  it('the curl + openssl example of docs/CHATOPS.md works as written, both schemes, over a real socket', async () => {
    const doc = readFileSync(new URL('../../docs/CHATOPS.md', import.meta.url), 'utf8');
    const block =
      /<!-- ci-webhook-example:start -->\n```sh\n([\s\S]*?)```\n<!-- ci-webhook-example:end -->/.exec(doc);
    expect(block).toBeTruthy();
    const server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
    });
    try {
      const port = (server.address() as AddressInfo).port;
      const { stdout } = await run('sh', ['-ec', block![1]!], {
        env: {
          PATH: process.env.PATH,
          VANE_URL: `http://127.0.0.1:${port}`,
          VANE_CI_WEBHOOK_SECRET: SECRET,
          SERVICE: 'details',
          VERSION: 'v2',
          PIPELINE_ID: 'pipeline-4711',
        },
        timeout: 30_000,
      });
      const answers = stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as RolloutBody);
      expect(answers).toHaveLength(2);
      expect(answers[0]!.rollout.id).toMatch(/^ro-/);
      expect(answers[1]!.rollout.id).toBe(answers[0]!.rollout.id);
      expect(answers[0]!.rollout.spec.metadata.triggeredBy).toBe('ci-webhook');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('says which setting turns it on when no secret is configured', async () => {
    const body = JSON.stringify({ template: 'reviews' });
    const res = await hub(body, {}, closed);
    expect(res.status).toBe(404);
    const e = await error(res);
    expect(e.code).toBe('NOT_FOUND');
    expect(e.message).toContain('set VANE_CI_WEBHOOK_SECRET');
    // The bearer-protected REST routes still want their token.
    expect((await closed.request('/api/v1/rollouts')).status).toBe(401);
  });
});
