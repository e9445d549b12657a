import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApp } from '../../src/api/app.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { buildTestDomain, type TestDomain } from '../helpers/domain.ts';
import { startTestRedis } from '../helpers/services.ts';

describe('GET /api/v1/whoami', () => {
  let redis: ManagedProcess;
  let domain: TestDomain;
  beforeAll(async () => {
    redis = await startTestRedis();
    domain = buildTestDomain({ redisUrl: redis.url });
  });
  afterAll(async () => {
    await domain?.close();
    await redis?.stop();
  });
  const app = (over: object = {}) =>
    newApp({
      logger: domain.ctx.logger,
      recorder: domain.ctx.recorder,
      readiness: [],
      domain: domain.ctx,
      ...over,
    });

  it('answers without a token when none is configured: the local caller with every scope', async () => {
    const res = await app().request('/api/v1/whoami');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ name: 'local', scopes: ['read', 'trigger', 'operate', 'admin'] });
  });

  it("names a scoped token, its scopes and its namespaces; a token without 'read' gets 403 naming it", async () => {
    const sha = (t: string) => createHash('sha256').update(t).digest('hex');
    const secured = app({
      scopedTokens: [
        { name: 'oncall', sha256: sha('oncall-token'), scopes: ['read', 'operate'], namespaces: ['shop'] },
        { name: 'ci', sha256: sha('ci-token'), scopes: ['trigger'] },
      ],
    });
    const me = await secured.request('/api/v1/whoami', { headers: { Authorization: 'Bearer oncall-token' } });
    expect(await me.json()).toEqual({ name: 'oncall', scopes: ['read', 'operate'], namespaces: ['shop'] });
    const ci = await secured.request('/api/v1/whoami', { headers: { Authorization: 'Bearer ci-token' } });
    expect(ci.status).toBe(403);
    expect(((await ci.json()) as { error: { message: string } }).error.message).toContain("'read'");
    expect((await secured.request('/api/v1/whoami')).status).toBe(401);
  });
});
