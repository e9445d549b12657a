import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, newApp } from '../../src/api/app.ts';
import { ERROR_CODES } from '../../src/api/errors.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { buildTestDomain, specFor, type TestDomain } from '../helpers/domain.ts';
import { startTestRedis } from '../helpers/services.ts';

/**
 * Thousands of malformed requests — bodies, headers, paths, query strings — against the real app
 * on a real Redis: never a 5xx, never a thrown error, every error in the envelope.
 */
describe('API fuzz (fast-check, real Redis)', () => {
  let redis: ManagedProcess;
  let domain: TestDomain;
  let apps: App[];
  let id: string;

  beforeAll(async () => {
    redis = await startTestRedis();
    domain = buildTestDomain({ redisUrl: redis.url });
    const deps = {
      logger: domain.ctx.logger,
      recorder: domain.ctx.recorder,
      readiness: [],
      domain: domain.ctx,
    };
    const open = newApp(deps);
    const secured = newApp({
      ...deps,
      apiTokens: ['fuzz-root-token'],
      scopedTokens: [
        {
          name: 'reader',
          sha256: createHash('sha256').update('fuzz-reader').digest('hex'),
          scopes: ['read'],
          namespaces: ['bookinfo'],
        },
      ],
      rateLimit: { redis: domain.redis, prefix: domain.prefix, perMinute: 1_000_000 },
    });
    apps = [open, secured];
    const res = await open.request('/api/v1/rollouts', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(specFor('fuzzed')),
    });
    id = ((await res.json()) as { rollout: { id: string } }).rollout.id;
  });
  afterAll(async () => {
    await domain?.close();
    await redis?.stop();
  });

  const segment = fc.oneof(
    fc.constantFrom(
      'rollouts',
      'templates',
      'analyze',
      'events',
      'pause',
      'abort',
      'approve',
      'retry',
      'promote',
    ),
    fc.string({ maxLength: 30 }).map(encodeURIComponent),
    fc.constant('..'),
    fc.constant('%00'),
    fc.constant('%ZZ'),
  );
  const path = fc.oneof(
    fc
      .tuple(
        fc.constantFrom(
          '/api/v1/rollouts',
          '/api/v1/rollouts/ID',
          '/api/v1/rollouts/ID/events',
          '/api/v1/rollouts/ID/pause',
          '/api/v1/rollouts/ID/approve',
          '/api/v1/rollouts/ID/retry',
          '/api/v1/templates',
          '/api/v1/templates/web',
          '/api/v1/analyze',
          '/api/v1/hooks/ci',
          '/healthz',
          '/openapi.json',
        ),
        fc.boolean(),
      )
      .map(([p, real]) => p.replace('ID', real ? 'IDREAL' : 'ro-nope')),
    fc.array(segment, { maxLength: 6 }).map((s) => `/api/v1/${s.join('/')}`),
    fc.webPath(),
  );
  const query = fc.oneof(
    fc.constant(''),
    fc.webQueryParameters().map((q) => `?${q}`),
    fc
      .record({
        after: fc.oneof(
          fc.string({ maxLength: 40 }),
          fc.constantFrom('zzz', '0-0', '1-', '-1', '99999999999999999999999-0'),
        ),
        limit: fc.oneof(fc.integer().map(String), fc.string({ maxLength: 5 })),
        namespace: fc.string({ maxLength: 20 }),
        phase: fc.constantFrom('progressing', 'nope', ''),
        active: fc.constantFrom('true', 'false', 'yes'),
        before: fc.oneof(fc.integer().map(String), fc.constant('x')),
      })
      .map((q) => `?${new URLSearchParams(q).toString()}`),
  );
  const printable = fc.string({
    unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
    maxLength: 80,
  });
  const auth = fc.option(
    fc.oneof(
      // Known tokens weigh more, so the scope checks (403) are reached often, not by luck.
      {
        arbitrary: fc.constantFrom(
          'Bearer fuzz-root-token',
          'Bearer fuzz-reader',
          'Bearer fuzz-reader',
          'Bearer ',
          'Basic Zm9vOmJhcg==',
          'bearer fuzz-root-token ',
        ),
        weight: 4,
      },
      { arbitrary: printable.map((s) => `Bearer ${s}`), weight: 1 },
      { arbitrary: printable, weight: 1 },
    ),
  );
  const json = fc.jsonValue({ maxDepth: 6 });
  const deep = fc.integer({ min: 20, max: 200 }).map((n) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`);
  const specLike = fc
    .record({
      over: fc.dictionary(
        fc.constantFrom(
          'strategy',
          'target',
          'canary',
          'analysis',
          'webhooks',
          'metadata',
          'stratgy',
          'template',
          'idempotencyKey',
        ),
        json,
      ),
    })
    .map(({ over }) => JSON.stringify(specFor('fz', over)));
  const body = fc.option(
    fc.oneof(
      json.map((v) => JSON.stringify(v)),
      specLike,
      deep,
      fc.string({ maxLength: 200 }),
      fc.constantFrom(
        '{',
        '{"target":',
        'null',
        '[]',
        '""',
        '\u0000',
        '{"by":1}',
        '{"reason":"x","by":"y","z":1}',
      ),
    ),
  );
  const contentType = fc.option(
    fc.constantFrom(
      'application/json',
      'text/plain',
      'application/json; charset=utf-8',
      'application/x-www-form-urlencoded',
      'multipart/form-data',
      'APPLICATION/JSON',
    ),
  );
  const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD');

  it('never answers 5xx or throws; every error is in the envelope', async () => {
    const seen = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          app: fc.integer({ min: 0, max: 1 }),
          method,
          path,
          query,
          auth,
          body,
          contentType,
          requestId: fc.option(printable),
        }),
        async (r) => {
          const headers: Record<string, string> = {};
          if (r.auth !== null) headers.Authorization = r.auth;
          if (r.contentType !== null) headers['Content-Type'] = r.contentType;
          if (r.requestId !== null) headers['X-Request-Id'] = r.requestId;
          const withBody = r.body !== null && r.method !== 'GET' && r.method !== 'HEAD';
          const res = await apps[r.app]!.request(`${r.path.replace('IDREAL', id)}${r.query}`, {
            method: r.method,
            headers,
            ...(withBody ? { body: r.body } : {}),
          });
          seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
          expect(res.status, `${r.method} ${r.path}${r.query}`).toBeLessThan(500);
          if (r.method === 'HEAD') return;
          const text = await res.text();
          if (res.status >= 400) {
            const doc = JSON.parse(text) as { error: { code: string; message: string; requestId: string } };
            expect(Object.keys(ERROR_CODES)).toContain(doc.error.code);
            expect(ERROR_CODES[doc.error.code as keyof typeof ERROR_CODES].status).toBe(res.status);
            expect(typeof doc.error.message).toBe('string');
            expect(doc.error.requestId).toBeTruthy();
          }
        },
      ),
      // Seeded (VANE_FUZZ_SEED picks another), so a failure can be replayed.
      { numRuns: 3_000, seed: Number(process.env.VANE_FUZZ_SEED ?? 20261127) },
    );
    // The runs reached the app's layers, not only the router's 404.
    for (const status of [200, 400, 401, 403, 404])
      expect(seen.get(status), `status ${status} seen`).toBeGreaterThan(0);
  }, 120_000);
});
