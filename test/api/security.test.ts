import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, newApp } from '../../src/api/app.ts';
import type { ApiDeps } from '../../src/api/context.ts';
import type { ApiTokenEntry } from '../../src/config.ts';
import { RolloutStore } from '../../src/rollouts/store.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { buildTestDomain, specFor, type TestDomain } from '../helpers/domain.ts';
import { startTestRedis } from '../helpers/services.ts';

const sha = (t: string) => createHash('sha256').update(t).digest('hex');
const entry = (name: string, scopes: ApiTokenEntry['scopes'], namespaces?: string[]): ApiTokenEntry => ({
  name,
  sha256: sha(`${name}-secret-token`),
  scopes,
  ...(namespaces ? { namespaces } : {}),
});
const bearer = (name: string) => ({ Authorization: `Bearer ${name}-secret-token` });

interface Envelope {
  error: { code: string; message: string; requestId: string; details?: unknown };
}

/** Every route under /api/v1 with the scope it needs and a body that passes validation. */
function routes(id: string) {
  return [
    { method: 'GET', path: '/api/v1/rollouts', scope: 'read' },
    { method: 'GET', path: `/api/v1/rollouts/${id}`, scope: 'read' },
    { method: 'GET', path: `/api/v1/rollouts/${id}/events`, scope: 'read' },
    { method: 'POST', path: '/api/v1/rollouts', scope: 'trigger', body: specFor('scoped-x') },
    { method: 'POST', path: `/api/v1/rollouts/${id}/pause`, scope: 'operate', body: {} },
    { method: 'POST', path: `/api/v1/rollouts/${id}/resume`, scope: 'operate', body: {} },
    { method: 'POST', path: `/api/v1/rollouts/${id}/promote`, scope: 'operate', body: {} },
    { method: 'POST', path: `/api/v1/rollouts/${id}/promote-full`, scope: 'operate', body: {} },
    { method: 'POST', path: `/api/v1/rollouts/${id}/abort`, scope: 'operate', body: {} },
    { method: 'POST', path: `/api/v1/rollouts/${id}/approve`, scope: 'operate', body: {} },
    { method: 'POST', path: `/api/v1/rollouts/${id}/undo`, scope: 'operate', body: {} },
    { method: 'POST', path: `/api/v1/rollouts/${id}/retry`, scope: 'trigger', body: {} },
    { method: 'GET', path: '/api/v1/templates', scope: 'read' },
    { method: 'GET', path: '/api/v1/templates/web', scope: 'read' },
    { method: 'POST', path: '/api/v1/templates', scope: 'admin', body: { name: 'x', spec: {} } },
    { method: 'PUT', path: '/api/v1/templates/web', scope: 'admin', body: { spec: {} } },
    { method: 'DELETE', path: '/api/v1/templates/web', scope: 'admin' },
    { method: 'POST', path: '/api/v1/analyze', scope: 'read', body: specFor('scoped-y') },
    { method: 'GET', path: '/api/v1/whoami', scope: 'read' },
  ] as { method: string; path: string; scope: string; body?: unknown }[];
}

describe('API security (real Redis)', () => {
  let redis: ManagedProcess;
  let domain: TestDomain;
  let open: App;
  let secured: App;
  let deps: ApiDeps;
  let id: string;
  const tokens = [
    entry('reader', ['read']),
    entry('ci', ['trigger', 'read']),
    entry('oncall', ['operate', 'read'], ['bookinfo']),
    entry('platform', ['admin']),
    entry('other-team', ['read', 'operate', 'trigger'], ['other']),
  ];

  beforeAll(async () => {
    redis = await startTestRedis();
    domain = buildTestDomain({ redisUrl: redis.url });
    deps = {
      logger: domain.ctx.logger,
      recorder: domain.ctx.recorder,
      readiness: [],
      domain: domain.ctx,
    };
    open = newApp(deps);
    secured = newApp({
      ...deps,
      apiTokens: ['plain-root-token'],
      scopedTokens: tokens,
      metricsToken: 'metrics-token-0123456789',
    });
    const res = await secured.request('/api/v1/rollouts', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...bearer('ci') },
      body: JSON.stringify(specFor('secured', { metadata: { triggeredBy: 'mallory' } })),
    });
    expect(res.status).toBe(201);
    id = ((await res.json()) as { rollout: { id: string } }).rollout.id;
  });
  afterAll(async () => {
    await domain?.close();
    await redis?.stop();
  });

  const call = (app: App, r: { method: string; path: string; body?: unknown }, headers = {}) =>
    app.request(r.path, {
      method: r.method,
      headers: { ...(r.body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...headers },
      ...(r.body !== undefined ? { body: JSON.stringify(r.body) } : {}),
    });

  it('401 on every route without a token or with an unknown one, in the envelope', async () => {
    for (const r of routes(id)) {
      for (const headers of [{}, { Authorization: 'Bearer nope' }, { Authorization: 'Basic abc' }]) {
        const res = await call(secured, r, headers);
        expect(res.status, `${r.method} ${r.path}`).toBe(401);
        const body = (await res.json()) as Envelope;
        expect(body.error.code).toBe('UNAUTHORIZED');
        expect(body.error.requestId).toBeTruthy();
        expect(res.headers.get('WWW-Authenticate')).toMatch(/^Bearer/);
      }
    }
  });

  it('403 naming the missing scope on every route, for a token without it', async () => {
    const without: Record<string, string> = {
      read: 'platform',
      trigger: 'reader',
      operate: 'ci',
      admin: 'ci',
    };
    for (const r of routes(id)) {
      const res = await call(secured, r, bearer(without[r.scope]!));
      expect(res.status, `${r.method} ${r.path}`).toBe(403);
      const body = (await res.json()) as Envelope;
      expect(body.error.code).toBe('FORBIDDEN');
      expect(body.error.message).toContain(`lacks the '${r.scope}' scope`);
    }
  });

  it('a token with the scope passes the guard (no 401/403) on every route', async () => {
    const withScope: Record<string, Record<string, string>> = {
      read: bearer('reader'),
      trigger: bearer('ci'),
      operate: bearer('oncall'),
      admin: bearer('platform'),
    };
    for (const r of routes(id)) {
      const res = await call(secured, r, withScope[r.scope]);
      expect([401, 403], `${r.method} ${r.path} → ${res.status}`).not.toContain(res.status);
      const plain = await call(secured, r, { Authorization: 'Bearer plain-root-token' });
      expect([401, 403], `${r.method} ${r.path}`).not.toContain(plain.status);
    }
  });

  it('403 naming the namespace for a token limited to other namespaces; lists show only its own', async () => {
    for (const r of routes(id).filter((x) => x.path.includes(id))) {
      const res = await call(secured, r, bearer('other-team'));
      expect(res.status, `${r.method} ${r.path}`).toBe(403);
      expect(((await res.json()) as Envelope).error.message).toContain("may not act in namespace 'bookinfo'");
    }
    const start = await call(
      secured,
      { method: 'POST', path: '/api/v1/rollouts', body: specFor('ns-x') },
      bearer('other-team'),
    );
    expect(start.status).toBe(403);
    const list = (await (
      await secured.request('/api/v1/rollouts', { headers: bearer('other-team') })
    ).json()) as {
      rollouts: unknown[];
    };
    expect(list.rollouts).toEqual([]);
    const filtered = await secured.request('/api/v1/rollouts?namespace=bookinfo', {
      headers: bearer('other-team'),
    });
    expect(filtered.status).toBe(403);
    // The token limited to bookinfo may act there.
    const ok = await secured.request(`/api/v1/rollouts/${id}`, { headers: bearer('oncall') });
    expect(ok.status).toBe(200);
  });

  it('records the token name as the actor; a client-supplied by is only a note', async () => {
    const events = (await (
      await secured.request(`/api/v1/rollouts/${id}/events`, { headers: bearer('reader') })
    ).json()) as { events: { type: string; by?: string; reason: string }[] };
    expect(events.events[0]).toMatchObject({ type: 'created', by: 'ci' });
    expect(events.events[0]!.reason).toBe('rollout created by ci (triggeredBy: mallory)');

    const pause = await call(
      secured,
      { method: 'POST', path: `/api/v1/rollouts/${id}/pause`, body: { by: 'mallory', reason: 'logs' } },
      bearer('oncall'),
    );
    expect(pause.status).toBe(202);
    // 202 with the rollout as updated by the command.
    const body = (await pause.json()) as { rollout: { pendingCommands: string[]; version: number } };
    expect(body.rollout.pendingCommands).toContain('pause');
    const stored = await domain.ctx.store.get(id);
    expect(body.rollout.version).toBe(stored!.version);
    const cmd = stored!.commands.at(-1)!;
    expect(cmd).toMatchObject({ type: 'pause', by: 'oncall', reason: 'logs (says: mallory)' });
  });

  it('without any token configured the caller is local with every scope', async () => {
    const res = await open.request(`/api/v1/rollouts/${id}`);
    expect(res.status).toBe(200);
    const tpl = await call(open, {
      method: 'POST',
      path: '/api/v1/templates',
      body: { name: 'local-t', spec: {} },
    });
    expect(tpl.status).toBe(201);
  });

  it('413 in the envelope for a body over 1 MB, by Content-Length and while streaming', async () => {
    const big = JSON.stringify({ ...specFor('big'), metadata: { blob: 'x'.repeat(1_100_000) } });
    const res = await secured.request('/api/v1/rollouts', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Content-Length': String(big.length), ...bearer('ci') },
      body: big,
    });
    expect(res.status).toBe(413);
    expect(((await res.json()) as Envelope).error.code).toBe('PAYLOAD_TOO_LARGE');
    let pulled = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(ctrl) {
        pulled++;
        if (pulled > 100) return ctrl.close(); // 6.4 MB if read whole
        ctrl.enqueue(new Uint8Array(64 * 1024).fill(32));
      },
    });
    const streamed = await secured.request('/api/v1/rollouts', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...bearer('ci') },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect(pulled).toBeLessThan(40);
  });

  it('400 for JSON nested deeper than 32', async () => {
    const deep = `${'['.repeat(40)}${']'.repeat(40)}`;
    const body = `{"target":${deep}}`;
    const res = await secured.request('/api/v1/rollouts', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...bearer('ci') },
      body,
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as Envelope).error.message).toBe('body: JSON nested deeper than 32 levels');
    // 32 levels are fine (the body fails later for other reasons, not depth).
    const ok = await secured.request('/api/v1/rollouts', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...bearer('ci') },
      body: `{"x":${'['.repeat(31)}${']'.repeat(31)}}`,
    });
    expect(((await ok.json()) as Envelope).error.message).not.toContain('nested');
  });

  it('400 naming an unknown field and the nearest known one, in specs, templates and command bodies', async () => {
    const post = (path: string, body: unknown, who = 'ci') =>
      call(secured, { method: 'POST', path, body }, bearer(who));
    const typo = await post(
      '/api/v1/rollouts',
      specFor('typo', { strategy: { type: 'canary', steps: [10], stepIntervl: '1h' } }),
    );
    expect(typo.status).toBe(400);
    expect(((await typo.json()) as Envelope).error.message).toBe(
      'strategy.stepIntervl: unknown field; did you mean stepInterval?',
    );
    const nested = (await (
      await post(
        '/api/v1/rollouts',
        specFor('typo', {
          analysis: {
            metrics: [{ name: 'sr', template: 'request-success-rate', tresholdRange: { min: 1 } }],
          },
        }),
      )
    ).json()) as Envelope;
    expect(nested.error.message).toBe(
      'analysis.metrics[0].tresholdRange: unknown field; did you mean thresholdRange?',
    );
    const top = (await (
      await post('/api/v1/rollouts', { ...specFor('typo'), canery: {} })
    ).json()) as Envelope;
    expect(top.error.message).toBe('canery: unknown field; did you mean canary?');
    const tpl = await post(
      '/api/v1/templates',
      { name: 'typo', spec: { strategy: { stepIntervl: '1h' } } },
      'platform',
    );
    expect(tpl.status).toBe(400);
    expect(((await tpl.json()) as Envelope).error.message).toBe(
      'spec.strategy.stepIntervl: unknown field; did you mean stepInterval?',
    );
    const cmd = await post(`/api/v1/rollouts/${id}/abort`, { reasn: 'x' }, 'oncall');
    expect(cmd.status).toBe(400);
    expect(((await cmd.json()) as Envelope).error.message).toBe('reasn: unknown field; did you mean reason?');
  });

  it('400 for too much metadata, a secretEnv outside VANE_SECRET_, and a refused webhook URL', async () => {
    const post = (over: Record<string, unknown>) =>
      call(
        secured,
        { method: 'POST', path: '/api/v1/rollouts', body: specFor('limits', over) },
        bearer('ci'),
      );
    const many = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v']));
    expect(((await (await post({ metadata: many })).json()) as Envelope).error.message).toBe(
      'metadata: at most 50 keys',
    );
    const long = (await (await post({ metadata: { note: 'x'.repeat(1025) } })).json()) as Envelope;
    expect(long.error.message).toMatch(/^metadata\.note: /);
    const secret = (await (
      await post({
        webhooks: [{ type: 'rollout', url: 'https://hooks.example/x', secretEnv: 'VANE_API_TOKENS' }],
      })
    ).json()) as Envelope;
    expect(secret.error.message).toMatch(
      /^webhooks\[0\]\.secretEnv: must name an environment variable starting with VANE_SECRET_/,
    );
    const meta = (await (
      await post({ notifications: [{ type: 'webhook', url: 'http://169.254.169.254/latest/meta-data/' }] })
    ).json()) as Envelope;
    expect(meta.error.message).toBe(
      'notifications[0].url: vane does not send to this URL: 169.254.169.254 is a link-local or cloud-metadata address',
    );
    const gce = (await (
      await post({
        webhooks: [{ type: 'rollout', url: 'http://metadata.google.internal/computeMetadata/v1/' }],
      })
    ).json()) as Envelope;
    expect(gce.error.message).toMatch(
      /^webhooks\[0\]\.url: .*metadata\.google\.internal is a cloud-metadata host/,
    );
  });

  it('400 for a malformed ?after on events, not 500', async () => {
    const res = await secured.request(`/api/v1/rollouts/${id}/events?after=zzz`, {
      headers: bearer('reader'),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as Envelope).error.message).toMatch(/^after: an event id like/);
    const good = await secured.request(`/api/v1/rollouts/${id}/events?after=0-0`, {
      headers: bearer('reader'),
    });
    expect(good.status).toBe(200);
  });

  it('/metrics requires VANE_METRICS_TOKEN when it is set', async () => {
    expect((await secured.request('/metrics')).status).toBe(401);
    expect((await secured.request('/metrics', { headers: { Authorization: 'Bearer wrong' } })).status).toBe(
      401,
    );
    const ok = await secured.request('/metrics', {
      headers: { Authorization: 'Bearer metrics-token-0123456789' },
    });
    expect(ok.status).toBe(200);
    expect((await open.request('/metrics')).status).toBe(200);
    expect((await secured.request('/healthz')).status).toBe(200);
  });

  it('/openapi.json declares the bearer scheme and the scope of every /api/v1 operation', async () => {
    const doc = (await (await secured.request('/openapi.json')).json()) as {
      components: { securitySchemes: Record<string, { type: string; scheme: string }> };
      paths: Record<string, Record<string, { security?: unknown; 'x-vane-scope'?: string }>>;
    };
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    const toOpenApi = (p: string) => p.replace(id, '{id}').replace('/templates/web', '/templates/{name}');
    for (const r of routes(id)) {
      const op = doc.paths[toOpenApi(r.path)]?.[r.method.toLowerCase()];
      expect(op, `${r.method} ${r.path}`).toBeTruthy();
      expect(op!['x-vane-scope'], `${r.method} ${r.path}`).toBe(r.scope);
      expect(op!.security).toEqual([{ bearerAuth: [] }]);
    }
  });

  it('504 in the envelope when a request outlives the request timeout', async () => {
    const slow = newApp({
      ...deps,
      requestTimeoutMs: 200,
      domain: { ...domain.ctx, analyzeTarget: () => new Promise(() => {}) },
    });
    const res = await call(slow, { method: 'POST', path: '/api/v1/analyze', body: specFor('slow') });
    expect(res.status).toBe(504);
    expect(((await res.json()) as Envelope).error.code).toBe('TIMEOUT');
  });

  it('429 with Retry-After once a token used its mutating requests, counted in Redis across app instances', async () => {
    const limited = {
      ...deps,
      scopedTokens: tokens,
      rateLimit: { redis: domain.redis, prefix: domain.prefix, perMinute: 3 },
    };
    // Two API replicas sharing one Redis share one budget.
    const a = newApp(limited);
    const b = newApp(limited);
    const abort = (app: App) =>
      call(app, { method: 'POST', path: '/api/v1/rollouts/ro-nope/abort', body: {} }, bearer('oncall'));
    expect((await abort(a)).status).toBe(404);
    expect((await abort(b)).status).toBe(404);
    expect((await abort(a)).status).toBe(404);
    const limitedRes = await abort(b);
    expect(limitedRes.status).toBe(429);
    expect(Number(limitedRes.headers.get('Retry-After'))).toBeGreaterThanOrEqual(1);
    expect(Number(limitedRes.headers.get('Retry-After'))).toBeLessThanOrEqual(60);
    expect(((await limitedRes.json()) as Envelope).error.code).toBe('RATE_LIMITED');
    // Reads are not limited; another token has its own budget.
    expect((await a.request(`/api/v1/rollouts/${id}`, { headers: bearer('oncall') })).status).toBe(200);
    const other = await call(
      a,
      { method: 'POST', path: '/api/v1/rollouts/ro-nope/abort', body: {} },
      bearer('other-team'),
    );
    expect(other.status).toBe(404);
  });

  it('an ended rollout and its events expire after the retention; an active one does not', async () => {
    const store = new RolloutStore(domain.redis, domain.prefix, { retentionSeconds: 3_600 });
    const res = await call(open, { method: 'POST', path: '/api/v1/rollouts', body: specFor('retained') });
    const rid = ((await res.json()) as { rollout: { id: string } }).rollout.id;
    const docKey = `${domain.prefix}:r:rollout:${rid}`;
    const eventsKey = store.eventsKey(rid);
    expect(await domain.redis.ttl(docKey)).toBe(-1);
    const cur = (await store.get(rid))!;
    await store.update(cur, { ...cur, phase: 'progressing' }, [
      { time: Date.now(), type: 'transition', reason: 'go' },
    ]);
    expect(await domain.redis.ttl(docKey)).toBe(-1);
    expect(await domain.redis.ttl(eventsKey)).toBe(-1);
    const next = (await store.get(rid))!;
    await store.update(next, { ...next, phase: 'aborted', endedAt: Date.now() }, [
      { time: Date.now(), type: 'transition', reason: 'aborted', to: 'aborted' },
    ]);
    for (const key of [docKey, eventsKey]) {
      const ttl = await domain.redis.ttl(key);
      expect(ttl).toBeGreaterThan(3_500);
      expect(ttl).toBeLessThanOrEqual(3_600);
    }
    // Once expired, it leaves the lists too.
    await domain.redis.del(docKey, eventsKey);
    const list = (await (await open.request('/api/v1/rollouts?limit=500')).json()) as {
      rollouts: { id: string }[];
    };
    expect(list.rollouts.map((r) => r.id)).not.toContain(rid);
    expect(await domain.redis.zscore(`${domain.prefix}:r:idx:all`, rid)).toBeNull();
  });

  // Last: it stops the Redis.
  it('503 UNAVAILABLE with Retry-After when Redis is down, never 500', async () => {
    await redis.stop();
    for (const r of [
      { method: 'GET', path: `/api/v1/rollouts/${id}` },
      { method: 'GET', path: '/api/v1/rollouts' },
      { method: 'POST', path: '/api/v1/rollouts', body: specFor('down') },
      { method: 'POST', path: `/api/v1/rollouts/${id}/abort`, body: {} },
    ]) {
      const res = await call(open, r);
      expect(res.status, `${r.method} ${r.path}`).toBe(503);
      expect(res.headers.get('Retry-After')).toBe('5');
      expect(((await res.json()) as Envelope).error.code).toBe('UNAVAILABLE');
    }
  });
});
