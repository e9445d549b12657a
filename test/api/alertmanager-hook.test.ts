import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, newApp } from '../../src/api/app.ts';
import { alertAction, alertMatches, describeAlert } from '../../src/rollouts/alerts.ts';
import type { Rollout } from '../../src/rollouts/model.ts';
import { startRollout } from '../../src/rollouts/verbs.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { buildTestDomain, type TestDomain } from '../helpers/domain.ts';
import { startTestRedis } from '../helpers/services.ts';

const TOKEN = 'hook-token-abcdef0123456789';
const READER = 'reader-token-abcdef0123456789';
const sha = (t: string) => createHash('sha256').update(t).digest('hex');

interface Answer {
  error: { code: string; message: string };
  outcomes: { rolloutId: string; action: string; result: string; message: string }[];
}
const json = async (res: Response): Promise<Answer> => (await res.json()) as Answer;

const alert = (labels: Record<string, string>, status: 'firing' | 'resolved' = 'firing') => ({
  status,
  labels: { alertname: 'CanaryHighErrorRate', severity: 'critical', ...labels },
  annotations: { summary: 'cart v2 answers 48% errors' },
  startsAt: '2026-11-27T20:00:00.000Z',
  endsAt: '0001-01-01T00:00:00Z',
  generatorURL: 'http://prometheus.example/graph?g0.expr=x',
  fingerprint: 'b2f1c5a8d9e7f6a1',
});

/** Alertmanager's webhook payload as version 0.25 sends it. */
const payload = (alerts: ReturnType<typeof alert>[], over: Record<string, unknown> = {}) => ({
  receiver: 'vane',
  status: alerts.some((a) => a.status === 'firing') ? 'firing' : 'resolved',
  alerts,
  groupLabels: { alertname: 'CanaryHighErrorRate' },
  commonLabels: { alertname: 'CanaryHighErrorRate' },
  commonAnnotations: {},
  externalURL: 'http://alertmanager.example:9093',
  version: '4',
  groupKey: '{}:{alertname="CanaryHighErrorRate"}',
  truncatedAlerts: 0,
  ...over,
});

function spec(name: string, over: Record<string, unknown> = {}) {
  return {
    target: { namespace: 'shop', virtualService: name, destinationRule: name },
    stable: { subset: 'v1' },
    canary: { subset: 'v2', labels: { version: 'v2' } },
    strategy: { type: 'canary', steps: [50], stepInterval: '1m' },
    analysis: { ...over },
  };
}

describe('POST /api/v1/hooks/alertmanager (in process, real Redis)', () => {
  let redis: ManagedProcess;
  let domain: TestDomain;
  let app: App;
  const woken: string[] = [];
  beforeAll(async () => {
    redis = await startTestRedis();
    domain = buildTestDomain({ redisUrl: redis.url });
    // The ticks are not under test here: record the wake-ups instead of running them.
    domain.ctx.scheduler = { wake: async (id) => void woken.push(id) };
    app = newApp({
      logger: domain.ctx.logger,
      recorder: domain.ctx.recorder,
      readiness: [],
      // Alertmanager's own token: a name (the actor in events) and the operate scope only.
      scopedTokens: [
        { name: 'alertmanager', sha256: sha(TOKEN), scopes: ['operate'] },
        { name: 'dashboard', sha256: sha(READER), scopes: ['read'] },
      ],
      domain: domain.ctx,
    });
  });
  afterAll(async () => {
    await domain?.close();
    await redis?.stop();
  });

  const post = (body: unknown, headers: Record<string, string> = { Authorization: `Bearer ${TOKEN}` }) =>
    app.request('/api/v1/hooks/alertmanager', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const start = async (name: string, analysis: Record<string, unknown> = {}) =>
    (await startRollout({ ctx: domain.ctx, input: spec(name, analysis) })).rollout;
  const stored = async (id: string) => (await domain.ctx.store.get(id))!;

  it('refuses a missing or wrong bearer token with 401, before reading the body', async () => {
    expect((await post(payload([]), {})).status).toBe(401);
    const res = await post(payload([]), { Authorization: 'Bearer nope' });
    expect(res.status).toBe(401);
    expect((await json(res)).error.code).toBe('UNAUTHORIZED');
  });

  it('refuses a token without the operate scope with 403 naming the scope', async () => {
    const res = await post(payload([]), { Authorization: `Bearer ${READER}` });
    expect(res.status).toBe(403);
    expect((await json(res)).error.message).toMatch(/lacks the 'operate' scope/);
  });

  it('declares the bearer scheme and the operate scope in /openapi.json', async () => {
    const doc = (await (await app.request('/openapi.json')).json()) as {
      paths: Record<string, Record<string, Record<string, unknown>>>;
    };
    const op = doc.paths['/api/v1/hooks/alertmanager']!.post!;
    expect(op['x-vane-scope']).toBe('operate');
    expect(op.security).toEqual([{ bearerAuth: [] }]);
  });

  it('refuses unknown fields, another version and a malformed alert with 400 naming the field', async () => {
    let res = await post({ ...payload([]), extra: 1 });
    expect(res.status).toBe(400);
    expect((await json(res)).error.message).toMatch(/extra/);
    res = await post(payload([], { version: '3' }));
    expect(res.status).toBe(400);
    expect((await json(res)).error.message).toMatch(/version/);
    res = await post(payload([{ ...alert({}), status: 'pending' as 'firing' }]));
    expect(res.status).toBe(400);
    expect((await json(res)).error.message).toMatch(/alerts\[0\]\.status/);
  });

  it('refuses JSON nested deeper than 32 levels with 400, before parsing it', async () => {
    const res = await post(`${'['.repeat(5000)}${']'.repeat(5000)}`);
    expect(res.status).toBe(400);
    expect((await json(res)).error.message).toMatch(/nested deeper than 32/);
  });

  it('refuses a body over 1 MB with 413', async () => {
    const big = alert({});
    big.annotations.summary = 'x'.repeat(4000);
    const res = await post(payload(Array.from({ length: 300 }, () => big)));
    expect(res.status).toBe(413);
  });

  it('a firing alert on namespace + destination_service_name aborts the rollout, names the alert, wakes its tick', async () => {
    const r = await start('cart');
    woken.length = 0;
    const res = await post(payload([alert({ namespace: 'shop', destination_service_name: 'cart' })]));
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.outcomes).toEqual([
      expect.objectContaining({ rolloutId: r.id, action: 'rollback', result: 'done' }),
    ]);
    expect(woken).toEqual([r.id]);
    const after = await stored(r.id);
    expect(after.commands).toEqual([
      expect.objectContaining({
        type: 'abort',
        by: 'alertmanager',
        reason:
          'alert firing: CanaryHighErrorRate {destination_service_name="cart", namespace="shop", severity="critical"}: cart v2 answers 48% errors',
      }),
    ]);
    // A repeated notification while the abort is pending stores it again; once rolling back it is skipped.
    await domain.ctx.store.mutate(r.id, (x) => ({ next: { ...x, phase: 'rolling-back', commands: [] } }));
    const again = await json(await post(payload([alert({ namespace: 'shop', service: 'cart' })])));
    expect(again.outcomes[0]).toMatchObject({ result: 'skipped' });
  });

  it('resolved alerts and alerts about other services or namespaces do nothing', async () => {
    const r = await start('shoes');
    const res = await post(
      payload([
        alert({ namespace: 'shop', destination_service_name: 'shoes' }, 'resolved'),
        alert({ namespace: 'other', destination_service_name: 'shoes' }),
        alert({ namespace: 'shop', destination_service_name: 'cart-ui' }),
        alert({ destination_service_name: 'shoes' }),
      ]),
    );
    expect((await json(res)).outcomes).toEqual([]);
    expect((await stored(r.id)).commands).toEqual([]);
  });

  it('pause policy pauses; ignore and filtered alerts are recorded as events only', async () => {
    const paused = await start('hats', { alerts: { action: 'pause' } });
    const ignored = await start('socks', { alerts: { action: 'ignore' } });
    const named = await start('belts', { alerts: { alertnames: ['LatencyHigh'] } });
    const severe = await start('ties', { alerts: { severity: 'page' } });
    const res = await post(
      payload(['hats', 'socks', 'belts', 'ties'].map((s) => alert({ namespace: 'shop', virtualservice: s }))),
    );
    const { outcomes } = await json(res);
    const by = Object.fromEntries(outcomes.map((o: { rolloutId: string }) => [o.rolloutId, o]));
    expect(by[paused.id]).toMatchObject({ action: 'pause', result: 'done' });
    expect((await stored(paused.id)).commands[0]).toMatchObject({ type: 'pause', by: 'alertmanager' });
    for (const [r, why] of [
      [ignored, 'analysis.alerts.action is ignore'],
      [named, 'alert CanaryHighErrorRate is not in analysis.alerts.alertnames'],
      [severe, 'severity critical is not page (analysis.alerts.severity)'],
    ] as const) {
      expect(by[r.id]).toMatchObject({ action: 'ignore', result: 'ignored', message: why });
      expect((await stored(r.id)).commands).toEqual([]);
      const events = await domain.ctx.store.events(r.id);
      expect(events.at(-1)?.reason).toBe(
        `alert firing, ignored (${why}): CanaryHighErrorRate {namespace="shop", severity="critical", virtualservice="${r.spec.target.virtualService}"}: cart v2 answers 48% errors`,
      );
    }
  });

  it('an explicit vane_rollout label picks that rollout only, whatever the other labels say', async () => {
    const a = await start('gloves');
    const b = await start('scarves');
    const res = await post(payload([alert({ vane_rollout: b.id, namespace: 'shop', service: 'gloves' })]));
    const { outcomes } = await json(res);
    expect(outcomes.map((o: { rolloutId: string }) => o.rolloutId)).toEqual([b.id]);
    expect((await stored(a.id)).commands).toEqual([]);
  });

  it('refuses an unknown field in the spec policy, naming it', async () => {
    await expect(start('boots', { alerts: { action: 'rollback', sevrity: 'x' } })).rejects.toThrow(
      /analysis\.alerts/,
    );
    await expect(start('boots', { alerts: { action: 'explode' } })).rejects.toThrow(
      /analysis\.alerts\.action/,
    );
  });
});

describe('alert matching (pure)', () => {
  const r = {
    id: 'ro-1',
    spec: {
      target: {
        namespace: 'bookinfo',
        virtualService: 'reviews-vs',
        destinationRule: 'reviews-dr',
        host: 'reviews.bookinfo.svc.cluster.local',
      },
    },
  } as unknown as Rollout;
  const a = (labels: Record<string, string>) => ({ status: 'firing' as const, labels, annotations: {} });
  it('matches namespace (or destination_service_namespace) plus a service label naming the VS, DR or host', () => {
    expect(alertMatches(a({ namespace: 'bookinfo', destination_service_name: 'reviews' }), r)).toBe(true);
    expect(alertMatches(a({ destination_service_namespace: 'bookinfo', service: 'reviews-dr' }), r)).toBe(
      true,
    );
    expect(alertMatches(a({ namespace: 'bookinfo', virtualservice: 'reviews-vs' }), r)).toBe(true);
    expect(alertMatches(a({ namespace: 'bookinfo', pod: 'reviews' }), r)).toBe(false);
    expect(alertMatches(a({ namespace: 'default', service: 'reviews' }), r)).toBe(false);
    expect(alertMatches(a({ vane_rollout: 'ro-2', namespace: 'bookinfo', service: 'reviews' }), r)).toBe(
      false,
    );
    expect(alertMatches(a({ vane_rollout: 'ro-1' }), r)).toBe(true);
  });
  it('acts by the policy, rollback by default', () => {
    expect(alertAction(a({ alertname: 'X' }), undefined)).toEqual({ action: 'rollback' });
    expect(
      alertAction(a({ alertname: 'X', severity: 'page' }), { action: 'pause', severity: 'page' }),
    ).toEqual({
      action: 'pause',
    });
  });
  it('describes an alert with its name, sorted labels and summary, bounded', () => {
    expect(describeAlert({ ...a({ b: '2', alertname: 'N', a: '1' }), annotations: { summary: 's' } })).toBe(
      'N {a="1", b="2"}: s',
    );
    expect(describeAlert({ ...a({ x: 'y'.repeat(5000) }), annotations: {} }).length).toBeLessThanOrEqual(900);
  });
});
