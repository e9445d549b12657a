// End to end through the whole sandbox: gates, drift, and abort in each phase a rollout can be held
// in, each judged by the traffic at the gateway once the rollout has ended. One sandbox for the
// file; each test its own namespace, run concurrently.
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoServiceObjects } from '../../src/sandbox/demo-service.ts';
import { byVersion, type E2e, e2eSpec, startE2e, TERMINAL } from '../helpers/sandbox.ts';

const NAME = 'reviews';
/** Rollouts run concurrently on a loaded 2-core machine: generous. */
const TEST_TIMEOUT = 180_000;
const SLACK_SECRET = 'sandbox-e2e-slack-secret';
const OPERATOR = 'U0E2EOPS';

describe('steering rollouts in the sandbox, judged by traffic', () => {
  let e: E2e;
  beforeAll(async () => {
    e = await startE2e({ VANE_SLACK_SIGNING_SECRET: SLACK_SECRET, VANE_SLACK_OPERATORS: OPERATOR });
  }, 120_000);
  afterAll(async () => {
    await e?.close();
  }, 60_000);

  const start = async (spec: unknown) => {
    const r = await e.api('POST', '/api/v1/rollouts', spec);
    expect(r.status, JSON.stringify(r.data)).toBe(201);
    return r.data.rollout.id as string;
  };
  const setUp = async (ns: string) => {
    await e.service({ namespace: ns, name: NAME, versions: [{ version: 'v1' }, { version: 'v2' }] });
    e.load(ns, NAME, { rate: 12 });
  };
  const allOn = async (ns: string, version: string) => {
    const v = byVersion(await e.sample(ns, NAME, 500), NAME);
    expect(v, `500 requests after the rollout in ${ns}`).toEqual({ [version]: 500 });
  };
  const ended = (id: string) => e.waitFor(id, (r) => TERMINAL.includes(r.phase));
  const abort = async (id: string) => {
    const r = await e.api('POST', `/api/v1/rollouts/${id}/abort`, { reason: 'e2e abort' });
    expect(r.status, JSON.stringify(r.data)).toBe(202);
    const end = await ended(id);
    expect(end.phase, end.reason).toBe('aborted');
  };
  const long = { type: 'canary', steps: [20, 50], stepInterval: '60s' };

  it.concurrent(
    'a confirm-promotion gate holds at the last step until opened through the API',
    async () => {
      const ns = 'e2e-gate';
      await setUp(ns);
      const id = await start(
        e2eSpec(ns, NAME, {
          strategy: { type: 'canary', steps: [20, 50], stepInterval: '4s', confirmPromotion: true },
        }),
      );
      const held = await e.waitFor(id, (r) => r.phase === 'awaiting-promotion');
      expect(held.weights).toEqual({ stable: 50, canary: 50 });
      const split = byVersion(await e.sample(ns, NAME, 200), NAME);
      expect(split.v1).toBeGreaterThan(50);
      expect(split.v2).toBeGreaterThan(50);
      // Still held a while later: only the gate lets it through.
      await new Promise((r) => setTimeout(r, 3_000));
      expect((await e.rollout(id)).phase).toBe('awaiting-promotion');
      const ok = await e.api('POST', `/api/v1/rollouts/${id}/approve`, {});
      expect(ok.status, JSON.stringify(ok.data)).toBe(202);
      const end = await ended(id);
      expect(end.phase, end.reason).toBe('succeeded');
      await allOn(ns, 'v2');
    },
    TEST_TIMEOUT,
  );

  it.concurrent(
    'drift: the VirtualService edited with kubectl mid-rollout pauses it (reason drift); abort puts every request on stable',
    async () => {
      const ns = 'e2e-drift';
      await setUp(ns);
      const id = await start(e2eSpec(ns, NAME, { strategy: long }));
      await e.waitFor(id, (r) => r.phase === 'progressing' && r.applied && r.weights.canary === 20);
      const vs = JSON.parse(
        (await e.kubectl(['-n', ns, 'get', 'virtualservice', NAME, '-o', 'json'])).stdout,
      );
      const route: { destination: { subset: string } }[] = vs.spec.http[0].route;
      const ops = route.map((d, i) => ({
        op: 'replace',
        path: `/spec/http/0/route/${i}/weight`,
        value: d.destination.subset === 'v1' ? 60 : 40,
      }));
      const k = await e.kubectl([
        '-n',
        ns,
        'patch',
        'virtualservice',
        NAME,
        '--type=json',
        '-p',
        JSON.stringify(ops),
      ]);
      expect(k.code, k.stderr).toBe(0);
      const paused = await e.waitFor(id, (r) => r.phase === 'paused', 30_000);
      expect(paused.pause.kind).toBe('drift');
      expect(paused.reason).toMatch(/drift/);
      // vane does not fight the edit while paused: the gateway follows the hand-set weights.
      const split = byVersion(await e.sample(ns, NAME, 300), NAME);
      expect(split.v2).toBeGreaterThan(80);
      await abort(id);
      await allOn(ns, 'v1');
    },
    TEST_TIMEOUT,
  );

  it.concurrent(
    'abort while initializing: the canary workload never gets ready',
    async () => {
      const ns = 'e2e-abort-initializing';
      await e.service({ namespace: ns, name: NAME, versions: [{ version: 'v1' }] });
      e.load(ns, NAME, { rate: 12 });
      // A canary whose pods cannot start (a bad annotation: CreateContainerConfigError), as a bad image would.
      const dep = demoServiceObjects({ namespace: ns, name: NAME, versions: [{ version: 'v2' }] }).find(
        (o) => o.kind === 'Deployment',
      );
      dep.spec.template.metadata.annotations['sandbox.vane.dev/error-rate'] = 'lots';
      e.sb.sim.putObject(dep);
      const id = await start(e2eSpec(ns, NAME, { strategy: long }));
      await e
        .waitFor(id, (r) => r.phase === 'initializing' && r.createdSubset === true, 30_000)
        .catch(() => e.waitFor(id, (r) => r.phase === 'initializing'));
      // Still initializing a while later: vane waits for the workload, it does not shift traffic.
      await new Promise((r) => setTimeout(r, 2_000));
      const mid = await e.rollout(id);
      expect(mid.phase).toBe('initializing');
      expect(mid.weights.canary).toBe(0);
      await abort(id);
      await allOn(ns, 'v1');
      const dr = e.sb.sim.getObject('networking.istio.io/v1', 'DestinationRule', ns, NAME);
      expect(dr.spec.subsets.map((x: { name: string }) => x.name)).toEqual(['v1']);
    },
    TEST_TIMEOUT,
  );

  it.concurrent(
    'abort while progressing',
    async () => {
      const ns = 'e2e-abort-progressing';
      await setUp(ns);
      const id = await start(e2eSpec(ns, NAME, { strategy: long }));
      await e.waitFor(id, (r) => r.phase === 'progressing' && r.applied && r.weights.canary === 20);
      expect(byVersion(await e.sample(ns, NAME, 200), NAME).v2).toBeGreaterThan(10);
      await abort(id);
      await allOn(ns, 'v1');
    },
    TEST_TIMEOUT,
  );

  it.concurrent(
    'abort while paused by an operator',
    async () => {
      const ns = 'e2e-abort-paused';
      await setUp(ns);
      const id = await start(e2eSpec(ns, NAME, { strategy: long }));
      await e.waitFor(id, (r) => r.phase === 'progressing' && r.applied && r.weights.canary === 20);
      expect((await e.api('POST', `/api/v1/rollouts/${id}/pause`, {})).status).toBe(202);
      await e.waitFor(id, (r) => r.phase === 'paused');
      await abort(id);
      await allOn(ns, 'v1');
    },
    TEST_TIMEOUT,
  );

  it.concurrent(
    'abort while awaiting promotion, through the Slack endpoint with a signed request',
    async () => {
      const ns = 'e2e-abort-slack';
      await setUp(ns);
      const id = await start(
        e2eSpec(ns, NAME, {
          strategy: { type: 'canary', steps: [30], stepInterval: '4s', confirmPromotion: true },
        }),
      );
      await e.waitFor(id, (r) => r.phase === 'awaiting-promotion');
      const body = new URLSearchParams({
        token: 'ignored',
        team_id: 'T0E2E',
        command: '/vane',
        text: `abort ${id} canary looks wrong`,
        user_id: OPERATOR,
        user_name: 'oncall',
        response_url: 'https://hooks.slack.com/commands/T0E2E/1/x',
      }).toString();
      const ts = String(Math.floor(Date.now() / 1000));
      const sig = `v0=${createHmac('sha256', SLACK_SECRET).update(`v0:${ts}:${body}`).digest('hex')}`;
      const res = await fetch(`${e.sb.apiUrl}/api/v1/chatops/slack`, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/x-www-form-urlencoded',
          'X-Slack-Request-Timestamp': ts,
          'X-Slack-Signature': sig,
        },
        body,
        signal: AbortSignal.timeout(15_000),
      });
      expect(res.status).toBe(200);
      const reply = (await res.json()) as { text: string };
      expect(reply.text).toContain(id);
      const end = await ended(id);
      expect(end.phase, end.reason).toBe('aborted');
      const { data } = await e.api('GET', `/api/v1/rollouts/${id}/events`);
      expect(data.events.some((x: { by?: string }) => (x.by ?? '').startsWith(`slack:${OPERATOR}`))).toBe(
        true,
      );
      await allOn(ns, 'v1');
    },
    TEST_TIMEOUT,
  );
});
