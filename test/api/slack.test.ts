import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, newApp } from '../../src/api/app.ts';
import { GateStore } from '../../src/notify/gates.ts';
import { SLACK_ACTIONS, slackMessage, validateSlackMessage } from '../../src/notify/slack.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { buildTestDomain, specFor, type TestDomain } from '../helpers/domain.ts';
import { eventually, startTestRedis } from '../helpers/services.ts';

const SECRET = 'slack-signing-secret-42';
const OPERATOR = 'U0OPERATOR';
const READER = 'U0READER';

// Slack's documented example request (its signature is checked in signatures.test.ts).
const SLACK_EXAMPLE = {
  timestamp: '1531420618',
  body: 'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c',
  signature: 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503',
  secret: '8f742231b10e8888abcd99yyyzzz85a5',
};

type Reply = { response_type: string; text: string; blocks?: { type: string; text: { text: string } }[] };
type Envelope = { error: { code: string; message: string } };

describe('Slack doors (real Redis)', () => {
  let redis: ManagedProcess;
  let domain: TestDomain;
  let app: App;
  let gates: GateStore;
  // A real HTTP receiver standing in for Slack's response_url host, and one that is not Slack.
  const received: { path: string; body: Record<string, unknown> }[] = [];
  const foreign: unknown[] = [];
  let slackHost: Server;
  let otherHost: Server;
  let slackOrigin = '';
  let otherOrigin = '';
  const listen = (sink: (path: string, body: Record<string, unknown>) => void) =>
    new Promise<Server>((resolve) => {
      const s = createServer((req, res) => {
        let data = '';
        req.on('data', (d) => {
          data += d;
        });
        req.on('end', () => {
          sink(req.url ?? '', JSON.parse(data) as Record<string, unknown>);
          res.end('ok');
        });
      });
      s.listen(0, '127.0.0.1', () => resolve(s));
    });
  beforeAll(async () => {
    slackHost = await listen((path, body) => received.push({ path, body }));
    otherHost = await listen((_, body) => foreign.push(body));
    slackOrigin = `http://127.0.0.1:${(slackHost.address() as AddressInfo).port}`;
    otherOrigin = `http://127.0.0.1:${(otherHost.address() as AddressInfo).port}`;
    redis = await startTestRedis();
    domain = buildTestDomain({ redisUrl: redis.url });
    gates = new GateStore(domain.redis, domain.prefix);
    domain.ctx.approvals = gates;
    app = newApp({
      logger: domain.ctx.logger,
      recorder: domain.ctx.recorder,
      readiness: [],
      domain: domain.ctx,
      apiTokens: ['api-token-1'],
      doors: {
        slackSigningSecret: SECRET,
        slackOperators: [OPERATOR, 'U0OTHER'],
        slackResponseOrigin: slackOrigin,
      },
    });
  });
  afterAll(async () => {
    await new Promise((r) => slackHost?.close(r));
    await new Promise((r) => otherHost?.close(r));
    await domain?.close();
    await redis?.stop();
  });

  const signed = (
    path: string,
    body: string,
    opts: { ts?: number; secret?: string; signature?: string } = {},
  ) => {
    const ts = String(opts.ts ?? Math.floor(Date.now() / 1000));
    const sig =
      opts.signature ??
      `v0=${createHmac('sha256', opts.secret ?? SECRET)
        .update(`v0:${ts}:${body}`)
        .digest('hex')}`;
    return app.request(path, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-www-form-urlencoded',
        'X-Slack-Request-Timestamp': ts,
        'X-Slack-Signature': sig,
      },
      body,
    });
  };
  const slash = async (text: string, user = OPERATOR, name = 'alice') => {
    const body = new URLSearchParams({
      token: 'ignored',
      team_id: 'T1',
      command: '/vane',
      text,
      user_id: user,
      user_name: name,
      response_url: 'https://hooks.slack.com/commands/T1/1/x',
    }).toString();
    const res = await signed('/api/v1/chatops/slack', body);
    expect(res.status).toBe(200);
    return (await res.json()) as Reply;
  };
  const click = async (
    actionId: string,
    value: string,
    user = OPERATOR,
    extra: { response_url?: string; message?: unknown } = {},
  ) => {
    const payload = {
      type: 'block_actions',
      user: { id: user, username: 'alice', name: 'alice', team_id: 'T1' },
      api_app_id: 'A1',
      container: { type: 'message' },
      actions: [{ action_id: actionId, block_id: 'b', value, type: 'button', action_ts: '1' }],
      response_url: 'https://hooks.slack.com/actions/T1/1/x',
      ...extra,
    };
    const res = await signed(
      '/api/v1/chatops/slack/interactive',
      new URLSearchParams({ payload: JSON.stringify(payload) }).toString(),
    );
    expect(res.status).toBe(200);
    return (await res.json()) as Reply;
  };
  const start = async (name: string) => {
    const { rollout } = await import('../../src/rollouts/verbs.ts').then((v) =>
      v.startRollout({ ctx: domain.ctx, input: specFor(name) }),
    );
    return rollout;
  };

  it("refuses Slack's documented example today as a replay, and any bad signature, with 401 (no bearer token needed)", async () => {
    const replay = await app.request('/api/v1/chatops/slack', {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-www-form-urlencoded',
        'X-Slack-Request-Timestamp': SLACK_EXAMPLE.timestamp,
        'X-Slack-Signature': SLACK_EXAMPLE.signature,
      },
      body: SLACK_EXAMPLE.body,
    });
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as Envelope).error.message).toMatch(/stale or replayed/);
    // Signed with its own secret at its own time by a vane with that secret: still a replay today.
    const other = newApp({
      logger: domain.ctx.logger,
      recorder: domain.ctx.recorder,
      readiness: [],
      domain: domain.ctx,
      doors: { slackSigningSecret: SLACK_EXAMPLE.secret },
    });
    const again = await other.request('/api/v1/chatops/slack', {
      method: 'POST',
      headers: {
        'X-Slack-Request-Timestamp': SLACK_EXAMPLE.timestamp,
        'X-Slack-Signature': SLACK_EXAMPLE.signature,
      },
      body: SLACK_EXAMPLE.body,
    });
    expect(again.status).toBe(401);
    // ...and accepted by a vane whose clock reads that day: the scheme itself is Slack's.
    const thatDay = newApp({
      logger: domain.ctx.logger,
      recorder: domain.ctx.recorder,
      readiness: [],
      domain: domain.ctx,
      doors: {
        slackSigningSecret: SLACK_EXAMPLE.secret,
        now: () => Number(SLACK_EXAMPLE.timestamp) * 1000 + 5_000,
      },
    });
    const ok = await thatDay.request('/api/v1/chatops/slack', {
      method: 'POST',
      headers: {
        'X-Slack-Request-Timestamp': SLACK_EXAMPLE.timestamp,
        'X-Slack-Signature': SLACK_EXAMPLE.signature,
      },
      body: SLACK_EXAMPLE.body,
    });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as Reply).text).toContain('/vane list');

    const now = Math.floor(Date.now() / 1000);
    expect((await signed('/api/v1/chatops/slack', 'text=list&user_id=U1', { secret: 'wrong' })).status).toBe(
      401,
    );
    expect((await signed('/api/v1/chatops/slack', 'text=list&user_id=U1', { ts: now - 400 })).status).toBe(
      401,
    );
    expect(
      (await signed('/api/v1/chatops/slack/interactive', 'payload=%7B%7D', { secret: 'wrong' })).status,
    ).toBe(401);
    const unsigned = await app.request('/api/v1/chatops/slack', {
      method: 'POST',
      body: 'text=list&user_id=U1',
    });
    expect(unsigned.status).toBe(401);
    expect(((await unsigned.json()) as Envelope).error.message).toBe(
      'missing X-Slack-Request-Timestamp header',
    );
  });

  it('help, list and status read for anyone; unknown commands and bad ids are ephemeral errors', async () => {
    const r = await start('reviews');
    const help = await slash('help', READER);
    expect(help.response_type).toBe('ephemeral');
    expect(help.text).toContain('/vane abort <id> <reason>');
    expect(help.blocks?.[0]?.type).toBe('section');
    expect((await slash('', READER)).text).toContain('/vane list');

    const list = await slash('list', READER);
    expect(list.text).toContain(r.id);
    expect(list.text).toContain('bookinfo/reviews');

    const byId = await slash(`status ${r.id}`, READER);
    expect(byId.text).toContain('*pending*');
    const byService = await slash('status reviews', READER);
    expect(byService.text).toContain(r.id);
    expect((await slash('status bookinfo/reviews', READER)).text).toContain(r.id);
    const none = await slash('status nosuch', READER);
    expect(none.response_type).toBe('ephemeral');
    expect(none.text).toContain("no rollout of a service 'nosuch'");
    const missing = await slash('status ro-0000000000', READER);
    expect(missing.response_type).toBe('ephemeral');
    expect(missing.text).toContain("no rollout with id 'ro-0000000000'");

    const unknown = await slash('deploy everything', READER);
    expect(unknown.response_type).toBe('ephemeral');
    expect(unknown.text).toContain("unknown command 'deploy'");
    expect((await slash('promote', OPERATOR)).text).toContain('missing rollout id');
    expect((await slash('promote <script>', OPERATOR)).text).toContain('&lt;script&gt;');
  });

  it('acting needs an operator; an operator pauses, resumes, promotes, approves and aborts as slack:<id> (<name>)', async () => {
    const r = await start('ratings');
    const refused = await slash(`pause ${r.id}`, READER, 'bob');
    expect(refused.response_type).toBe('ephemeral');
    expect(refused.text).toContain('VANE_SLACK_OPERATORS');
    expect(refused.text).toContain(READER);
    expect((await domain.ctx.store.get(r.id))?.commands).toEqual([]);

    const paused = await slash(`pause ${r.id}`);
    expect(paused.response_type).toBe('in_channel');
    expect(paused.text).toContain(`pause of \`${r.id}\` accepted`);
    const stored = await domain.ctx.store.get(r.id);
    expect(stored?.commands.map((c) => [c.type, c.by])).toEqual([['pause', `slack:${OPERATOR} (alice)`]]);

    // A command that does not apply in this phase is an ephemeral 409 message, not a crash.
    const promote = await slash(`promote ${r.id}`);
    expect(promote.response_type).toBe('ephemeral');
    expect(promote.text).toContain(`cannot promote rollout ${r.id}: it is pending`);

    const approved = await slash(`approve ${r.id} confirm-promotion`);
    expect(approved.response_type).toBe('in_channel');
    expect(approved.text).toContain('approved confirm-promotion');
    expect(await gates.hasApproval(r.id, 'confirm-promotion')).toBe(true);
    const events = await domain.ctx.store.events(r.id);
    expect(events.at(-1)).toMatchObject({ type: 'gate', by: `slack:${OPERATOR} (alice)` });
    expect((await slash(`approve ${r.id} confirm-everything`)).text).toContain(
      "'confirm-everything' is not a gate",
    );

    expect((await slash(`abort ${r.id}`)).text).toContain('abort needs a reason');
    const aborted = await slash(`abort ${r.id} error rate too high`);
    expect(aborted.response_type).toBe('in_channel');
    const after = await domain.ctx.store.get(r.id);
    expect(after?.commands.at(-1)).toMatchObject({
      type: 'abort',
      by: `slack:${OPERATOR} (alice)`,
      reason: 'error rate too high',
    });
  });

  it('a gate notification carries Approve / Abort buttons, and a click on them acts (operators only)', async () => {
    const r = await start('details');
    const held = {
      ...r,
      gate: { key: 'confirm-promotion', since: Date.now(), message: 'waiting for approval' },
    };
    const msg = slackMessage(held, {
      time: Date.now(),
      type: 'gate',
      reason: 'waiting at confirm-promotion: no approval yet',
    });
    expect(validateSlackMessage(msg)).toEqual([]);
    const actions = msg.blocks?.find((b) => b.type === 'actions');
    if (actions?.type !== 'actions') throw new Error('no actions block');
    const [approve, abort] = actions.elements;
    expect(approve?.action_id).toBe(SLACK_ACTIONS.approve);
    expect(abort?.action_id).toBe(SLACK_ACTIONS.abort);
    expect(JSON.parse(approve!.value)).toEqual({ rollout: r.id, gate: 'confirm-promotion' });
    // Other events get no buttons, and no link approves anything.
    const plain = slackMessage(held, { time: Date.now(), type: 'weight', reason: 'step 1' });
    expect(plain.blocks?.some((b) => b.type === 'actions')).toBe(false);
    expect(JSON.stringify(msg)).not.toMatch(/approve.*https?:/i);

    const refused = await click(approve!.action_id, approve!.value, READER);
    expect(refused.response_type).toBe('ephemeral');
    expect(await gates.hasApproval(r.id, 'confirm-promotion')).toBe(false);

    const ok = await click(approve!.action_id, approve!.value);
    expect(ok.response_type).toBe('in_channel');
    expect(ok.text).toContain('approved confirm-promotion');
    expect(await gates.hasApproval(r.id, 'confirm-promotion')).toBe(true);

    const foreign = await click('someone-else', approve!.value);
    expect(foreign.response_type).toBe('ephemeral');
    expect(foreign.text).toContain('not one of vane');
    expect((await click(SLACK_ACTIONS.approve, '{"rollout":"../../x","gate":"g"}')).response_type).toBe(
      'ephemeral',
    );

    const aborted = await click(abort!.action_id, abort!.value);
    expect(aborted.text).toContain(`aborted \`${r.id}\``);
    expect((await domain.ctx.store.get(r.id))?.commands.at(-1)).toMatchObject({
      type: 'abort',
      by: `slack:${OPERATOR} (alice)`,
      reason: 'aborted from Slack at confirm-promotion',
    });

    const junk = await signed('/api/v1/chatops/slack/interactive', 'payload=not-json');
    expect(((await junk.json()) as Reply).text).toContain('payload: not valid JSON');
  });

  it("a click's outcome goes to response_url on Slack's host only: the buttons replaced by who did what, refusals to the clicker", async () => {
    const r = await start('follow');
    const held = { ...r, gate: { key: 'confirm-promotion', since: Date.now(), message: 'waiting' } };
    const msg = slackMessage(held, {
      time: Date.now(),
      type: 'gate',
      reason: 'waiting at confirm-promotion: no approval yet',
    });
    const actions = msg.blocks?.find((b) => b.type === 'actions');
    if (actions?.type !== 'actions') throw new Error('no actions block');
    const value = actions.elements[0]!.value;

    await click(SLACK_ACTIONS.approve, value, OPERATOR, {
      response_url: `${otherOrigin}/steal`,
      message: msg,
    });
    await click(SLACK_ACTIONS.approve, value, READER, {
      response_url: `${slackOrigin}/actions/1`,
      message: msg,
    });
    await eventually(async () => (received.length >= 1 ? true : undefined), 10_000);
    expect(received[0]).toMatchObject({
      path: '/actions/1',
      body: { replace_original: false, response_type: 'ephemeral' },
    });
    expect(String(received[0]!.body.text)).toContain('not a vane operator');

    await click(SLACK_ACTIONS.approve, value, OPERATOR, {
      response_url: `${slackOrigin}/actions/2`,
      message: msg,
    });
    await eventually(async () => (received.length >= 2 ? true : undefined), 10_000);
    const done = received[1]!.body as {
      replace_original: boolean;
      blocks: { type: string; elements?: { text: string }[] }[];
    };
    expect(received[1]!.path).toBe('/actions/2');
    expect(done.replace_original).toBe(true);
    expect(done.blocks.map((b) => b.type)).toEqual(['section', 'section', 'context', 'context']);
    expect(done.blocks.at(-1)!.elements![0]!.text).toContain(`<@${OPERATOR}> approved confirm-promotion`);
    // The response_url on another host got nothing.
    expect(foreign).toEqual([]);
  });

  it('says which setting turns the doors on when no signing secret is configured', async () => {
    const off = newApp({
      logger: domain.ctx.logger,
      recorder: domain.ctx.recorder,
      readiness: [],
      domain: domain.ctx,
    });
    for (const path of ['/api/v1/chatops/slack', '/api/v1/chatops/slack/interactive']) {
      const res = await off.request(path, { method: 'POST', body: 'text=list' });
      expect(res.status).toBe(404);
      expect(((await res.json()) as Envelope).error.message).toContain('VANE_SLACK_SIGNING_SECRET');
    }
  });

  it('answers within Slack’s budget even when Redis does not answer', async () => {
    const r = await start('slowpoke');
    await domain.redis.call('CLIENT', 'PAUSE', '4000', 'ALL');
    const started = Date.now();
    const res = await slash(`status ${r.id}`, READER);
    const took = Date.now() - started;
    expect(res.response_type).toBe('ephemeral');
    expect(res.text).toContain('did not finish within 2.5s');
    // Loose on a loaded machine: the message above shows the budget, not a slow Redis, answered.
    expect(took).toBeLessThan(10_000);
  });
});
