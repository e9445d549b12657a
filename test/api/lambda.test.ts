import { createHmac } from 'node:crypto';
import type { LambdaEvent } from 'hono/aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { buildTestDomain, specFor, type TestDomain } from '../helpers/domain.ts';
import { startTestRedis } from '../helpers/services.ts';

const SECRET = 'lambda-ci-secret-0123456789';

/** An API Gateway HTTP API (payload format 2.0) event, as AWS sends it. */
function v2Event(
  method: string,
  rawPath: string,
  opts: { body?: string; headers?: Record<string, string>; query?: string; base64?: boolean } = {},
) {
  const body =
    opts.body === undefined ? undefined : opts.base64 ? Buffer.from(opts.body).toString('base64') : opts.body;
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString: opts.query ?? '',
    cookies: [],
    headers: {
      host: 'abc123.execute-api.eu-west-1.amazonaws.com',
      'user-agent': 'curl/8.5.0',
      ...(opts.headers ?? {}),
    },
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      domainName: 'abc123.execute-api.eu-west-1.amazonaws.com',
      domainPrefix: 'abc123',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'curl/8.5.0' },
      requestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
      routeKey: '$default',
      stage: '$default',
      time: '27/Nov/2026:19:00:00 +0000',
      timeEpoch: Date.now(),
    },
    body: body ?? null,
    isBase64Encoded: opts.base64 ?? false,
  } as unknown as LambdaEvent;
}

describe('the AWS Lambda handler (API Gateway v2 event, real Redis)', () => {
  let redis: ManagedProcess;
  let domain: TestDomain;
  let mod: typeof import('../../src/api/lambda.ts');
  const saved = { ...process.env };
  beforeAll(async () => {
    redis = await startTestRedis();
    domain = buildTestDomain({ redisUrl: redis.url });
    // The function reads its settings from its environment at the first invocation (cold start).
    Object.assign(process.env, {
      REDIS_URL: redis.url,
      VANE_KEY_PREFIX: domain.prefix,
      VANE_CI_WEBHOOK_SECRET: SECRET,
      KUBECONFIG: '',
      PROMETHEUS_URL: '',
      VANE_API_TOKENS: 'fn-token',
      LOG_LEVEL: 'silent',
    });
    mod = await import('../../src/api/lambda.ts');
  });
  afterAll(async () => {
    await mod?.serverless.close();
    process.env = saved;
    await domain?.close();
    await redis?.stop();
  });

  it('serves a stored rollout, the envelope for errors, and the signed CI door through the Lambda handler', async () => {
    const { startRollout } = await import('../../src/rollouts/verbs.ts');
    const { rollout } = await startRollout({ ctx: domain.ctx, input: specFor('reviews') });

    const got = await mod.handler(
      v2Event('GET', `/api/v1/rollouts/${rollout.id}`, { headers: { authorization: 'Bearer fn-token' } }),
    );
    expect(got.statusCode).toBe(200);
    expect(got.headers?.['content-type']).toContain('application/json');
    const body = JSON.parse(got.body) as { id: string; phase: string } | { rollout: { id: string } };
    expect(JSON.stringify(body)).toContain(rollout.id);

    const unauth = await mod.handler(v2Event('GET', `/api/v1/rollouts/${rollout.id}`));
    expect(unauth.statusCode).toBe(401);
    expect(JSON.parse(unauth.body).error.code).toBe('UNAUTHORIZED');

    const missing = await mod.handler(
      v2Event('GET', '/api/v1/rollouts/ro-000000', {
        headers: { authorization: 'Bearer fn-token' },
        query: 'x=1',
      }),
    );
    expect(missing.statusCode).toBe(404);
    expect(JSON.parse(missing.body).error.message).toBe("no rollout with id 'ro-000000'");

    // The CI door gets the raw bytes through the adapter (plain and base64 bodies): the signature
    // holds, and the spec is then judged (this function has no cluster configured).
    const hook = JSON.stringify({
      template: 'nope',
      canary: { labels: { version: 'v2' } },
      idempotencyKey: 'fn-1',
    });
    const sig = `sha256=${createHmac('sha256', SECRET).update(hook).digest('hex')}`;
    for (const base64 of [false, true]) {
      const res = await mod.handler(
        v2Event('POST', '/api/v1/hooks/ci', {
          body: hook,
          base64,
          headers: { 'content-type': 'application/json', 'x-hub-signature-256': sig },
        }),
      );
      expect(res.statusCode).toBe(400);
      expect(JSON.parse(res.body).error.message).toMatch(/^template: no template named 'nope'/);
    }
    const forged = await mod.handler(
      v2Event('POST', '/api/v1/hooks/ci', {
        body: hook,
        headers: { 'x-hub-signature-256': `sha256=${'0'.repeat(64)}` },
      }),
    );
    expect(forged.statusCode).toBe(401);

    // The fetch export is the same app.
    const health = await mod.fetch(new Request('http://fn.local/healthz'));
    expect(health.status).toBe(200);
  });
});
