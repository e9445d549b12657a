import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, newApp } from '../../src/api/app.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { buildTestDomain, specFor, type TestDomain } from '../helpers/domain.ts';
import { startTestRedis } from '../helpers/services.ts';

describe('rollouts API (real Redis)', () => {
  let redis: ManagedProcess;
  let domain: TestDomain;
  let app: App;
  beforeAll(async () => {
    redis = await startTestRedis();
    domain = buildTestDomain({
      redisUrl: redis.url,
      templates: {
        reviews: {
          target: { namespace: 'bookinfo', virtualService: 'tpl', destinationRule: 'tpl' },
          stable: { subset: 'v1' },
          strategy: { type: 'canary', steps: [50] },
        },
      },
    });
    app = newApp({
      logger: domain.ctx.logger,
      recorder: domain.ctx.recorder,
      readiness: [],
      domain: domain.ctx,
    });
  });
  afterAll(async () => {
    await domain?.close();
    await redis?.stop();
  });

  const post = (path: string, body?: unknown, headers: Record<string, string> = {}) =>
    app.request(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  it('starts a rollout, shows it, lists it, and enqueues its tick', async () => {
    const res = await post('/api/v1/rollouts', specFor('ratings', { idempotencyKey: 'build-1' }));
    expect(res.status).toBe(201);
    const { rollout } = (await res.json()) as { rollout: { id: string; phase: string; weights: unknown } };
    expect(rollout.phase).toBe('pending');
    expect(res.headers.get('Location')).toBe(`/api/v1/rollouts/${rollout.id}`);
    expect(rollout.weights).toEqual({ stable: 100, canary: 0 });

    const got = await app.request(`/api/v1/rollouts/${rollout.id}`);
    expect(got.status).toBe(200);
    const list = (await (await app.request('/api/v1/rollouts?namespace=bookinfo&active=true')).json()) as {
      rollouts: { id: string }[];
    };
    expect(list.rollouts.map((r) => r.id)).toContain(rollout.id);
    expect((await domain.ticks.state(rollout.id)).scheduled).toBe(true);

    const events = (await (await app.request(`/api/v1/rollouts/${rollout.id}/events`)).json()) as {
      events: { type: string }[];
    };
    expect(events.events.map((e) => e.type)).toEqual(['created']);
  });

  it('returns the same rollout for the same idempotency key', async () => {
    const a = (await (
      await post('/api/v1/rollouts', specFor('details', { idempotencyKey: 'build-7' }))
    ).json()) as { rollout: { id: string } };
    const res = await post('/api/v1/rollouts', specFor('details', { idempotencyKey: 'build-7' }));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { rollout: { id: string } }).rollout.id).toBe(a.rollout.id);
  });

  it('two concurrent starts on one target: one rollout and one TargetBusy naming it', async () => {
    const [a, b] = await Promise.all([
      post('/api/v1/rollouts', specFor('productpage')),
      post('/api/v1/rollouts', specFor('productpage')),
    ]);
    const statuses = [a.status, b.status].sort();
    expect(statuses).toEqual([201, 409]);
    const created = (await (a.status === 201 ? a : b).json()) as { rollout: { id: string } };
    const busy = (await (a.status === 409 ? a : b).json()) as {
      error: { code: string; message: string; details: { activeRolloutId: string } };
    };
    expect(busy.error.code).toBe('TARGET_BUSY');
    expect(busy.error.details.activeRolloutId).toBe(created.rollout.id);
    expect(busy.error.message).toContain('VirtualService bookinfo/productpage is held by active rollout');
  });

  it('refuses a bad spec naming the field and loses nothing', async () => {
    const bad = specFor('bad', { strategy: { type: 'canary', steps: [10, 30, 20] } });
    const res = await post('/api/v1/rollouts', bad);
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string; requestId: string } };
    expect(body.error.code).toBe('BAD_REQUEST');
    expect(body.error.message).toBe('strategy.steps[2]: steps must ascend: 20 follows 30');
    expect(body.error.requestId).toBeTruthy();

    const noLabels = (await (
      await post('/api/v1/rollouts', specFor('bad', { canary: { subset: 'v2' } }))
    ).json()) as { error: { message: string } };
    expect(noLabels.error.message).toMatch(/^canary\.labels: /);
    const same = (await (
      await post('/api/v1/rollouts', specFor('bad', { canary: { subset: 'v1', labels: { version: 'v1' } } }))
    ).json()) as { error: { message: string } };
    expect(same.error.message).toBe("canary.subset: must differ from stable.subset ('v1')");
    const notJson = await app.request('/api/v1/rollouts', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{"target":',
    });
    expect(notJson.status).toBe(400);
    // Nothing was stored for the refused requests: the target is free.
    expect((await post('/api/v1/rollouts', specFor('bad'))).status).toBe(201);
  });

  it('merges a named template under the request', async () => {
    const res = await post('/api/v1/rollouts', {
      template: 'reviews',
      canary: { subset: 'v3', labels: { version: 'v3' } },
    });
    expect(res.status).toBe(201);
    const { rollout } = (await res.json()) as {
      rollout: { spec: { target: { virtualService: string }; canary: { subset: string } } };
    };
    expect(rollout.spec.target.virtualService).toBe('tpl');
    expect(rollout.spec.canary.subset).toBe('v3');
    const unknown = (await (await post('/api/v1/rollouts', { template: 'nope' })).json()) as {
      error: { message: string };
    };
    expect(unknown.error.message).toBe("template: no template named 'nope'; templates are: reviews");
  });

  it('manages templates through the API', async () => {
    expect(
      (await post('/api/v1/templates', { name: 'ratings', spec: { stable: { subset: 'v1' } } })).status,
    ).toBe(201);
    expect((await post('/api/v1/templates', { name: 'ratings', spec: {} })).status).toBe(409);
    const put = await app.request('/api/v1/templates/ratings', {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ spec: { stable: { subset: 'v0' } } }),
    });
    expect(put.status).toBe(200);
    expect(
      ((await (await app.request('/api/v1/templates/ratings')).json()) as { template: { spec: unknown } })
        .template.spec,
    ).toEqual({ stable: { subset: 'v0' } });
    expect((await app.request('/api/v1/templates/reviews', { method: 'DELETE' })).status).toBe(409);
    expect((await app.request('/api/v1/templates/ratings', { method: 'DELETE' })).status).toBe(204);
    expect((await app.request('/api/v1/templates/ratings')).status).toBe(404);
  });

  it('stores commands and refuses those that do not apply, saying why', async () => {
    const { rollout } = (await (await post('/api/v1/rollouts', specFor('cmds'))).json()) as {
      rollout: { id: string };
    };
    const resume = await post(`/api/v1/rollouts/${rollout.id}/resume`, {});
    expect(resume.status).toBe(409);
    expect(((await resume.json()) as { error: { message: string } }).error.message).toBe(
      `cannot resume rollout ${rollout.id}: it is pending; resume applies when it is paused`,
    );
    const pause = await post(`/api/v1/rollouts/${rollout.id}/pause`, {
      by: 'alice',
      reason: 'checking logs',
    });
    expect(pause.status).toBe(202);
    expect(
      ((await pause.json()) as { rollout: { pendingCommands: string[] } }).rollout.pendingCommands,
    ).toEqual(['pause']);
    expect((await post('/api/v1/rollouts/ro-nope/abort', {})).status).toBe(404);
  });

  it('GET shows every change at once, made through the API or written by the engine', async () => {
    const { rollout } = (await (await post('/api/v1/rollouts', specFor('fresh'))).json()) as {
      rollout: { id: string };
    };
    type View = {
      rollout: { version: number; phase: string; pendingCommands: string[]; commands?: unknown };
    };
    const get = async () => {
      const res = await app.request(`/api/v1/rollouts/${rollout.id}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('Content-Type')).toBe('application/json');
      return (await res.json()) as View;
    };
    const first = await get();
    expect(first.rollout).toMatchObject({ version: 1, phase: 'pending', pendingCommands: [] });
    expect(first.rollout.commands).toBeUndefined();
    expect(await get()).toEqual(first);

    expect((await post(`/api/v1/rollouts/${rollout.id}/pause`, {})).status).toBe(202);
    expect((await get()).rollout).toMatchObject({ version: 2, pendingCommands: ['pause'] });

    // A write straight through the store, as a worker's tick makes it.
    const stored = (await domain.ctx.store.get(rollout.id))!;
    await domain.ctx.store.update(stored, { ...stored, phase: 'progressing', commands: [] });
    expect((await get()).rollout).toMatchObject({ version: 3, phase: 'progressing', pendingCommands: [] });
    expect((await app.request('/api/v1/rollouts/ro-missing')).status).toBe(404);
  });

  it('requires a token when tokens are configured', async () => {
    const secured = newApp({
      logger: domain.ctx.logger,
      recorder: domain.ctx.recorder,
      readiness: [],
      domain: domain.ctx,
      apiTokens: ['t0ken'],
    });
    expect((await secured.request('/api/v1/rollouts')).status).toBe(401);
    expect(
      (await secured.request('/api/v1/rollouts', { headers: { Authorization: 'Bearer t0ken' } })).status,
    ).toBe(200);
    expect((await secured.request('/healthz')).status).toBe(200);
  });

  it('serves an OpenAPI document with the error envelope', async () => {
    const doc = (await (await app.request('/openapi.json')).json()) as {
      paths: Record<string, unknown>;
      components: { schemas: Record<string, unknown> };
    };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/api/v1/rollouts', '/api/v1/rollouts/{id}', '/api/v1/rollouts/{id}/promote']),
    );
    expect(doc.components.schemas.Error).toBeTruthy();
  });
});
