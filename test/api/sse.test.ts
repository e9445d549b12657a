import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { type ServerType, serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, newApp } from '../../src/api/app.ts';
import type { Rollout, RolloutEvent } from '../../src/rollouts/model.ts';
import type { Phase } from '../../src/rollouts/phases.ts';
import { startRollout } from '../../src/rollouts/verbs.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { buildTestDomain, specFor, type TestDomain } from '../helpers/domain.ts';
import { eventually, startTestRedis } from '../helpers/services.ts';

interface Message {
  id?: string;
  event?: string;
  data?: string;
  comment?: string;
}

/** A real SSE client over fetch: reads the body as it arrives and parses messages (and comments). */
class SseClient {
  readonly messages: Message[] = [];
  closed = false;
  private readonly controller = new AbortController();
  private waiters: (() => void)[] = [];
  status = 0;
  contentType = '';

  static async open(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const client = new SseClient();
    const res = await fetch(url, {
      headers: { Accept: 'text/event-stream', ...headers },
      signal: client.controller.signal,
    });
    client.status = res.status;
    client.contentType = res.headers.get('content-type') ?? '';
    if (res.status !== 200 || !res.body) {
      client.messages.push({ data: await res.text() });
      client.closed = true;
      return client;
    }
    void client.read(res.body);
    return client;
  }

  private async read(body: ReadableStream<Uint8Array>) {
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of body) {
        buf += decoder.decode(chunk, { stream: true });
        let at = buf.indexOf('\n\n');
        while (at >= 0) {
          const block = buf.slice(0, at);
          buf = buf.slice(at + 2);
          const m: Message = {};
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) m.comment = line.slice(1).trim();
            else {
              const [k, ...rest] = line.split(':');
              const v = rest.join(':').replace(/^ /, '');
              if (k === 'data') m.data = m.data === undefined ? v : `${m.data}\n${v}`;
              else if (k === 'id' || k === 'event') m[k] = v;
            }
          }
          this.messages.push(m);
          at = buf.indexOf('\n\n');
        }
        this.wake();
      }
    } catch {
      // aborted by the test
    }
    this.closed = true;
    this.wake();
  }

  private wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Waits until `pred` holds of the messages so far (or fails after `ms`). */
  async until(pred: (m: Message[]) => boolean, ms = 15_000): Promise<Message[]> {
    const deadline = Date.now() + ms;
    while (!pred(this.messages)) {
      if (Date.now() > deadline) throw new Error(`timed out; got ${JSON.stringify(this.messages)}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
    return this.messages;
  }

  events(): (RolloutEvent & { rolloutId: string; id: string })[] {
    return this.messages.filter((m) => m.data && !m.event).map((m) => JSON.parse(m.data!));
  }

  close() {
    this.controller.abort();
  }
}

describe('SSE event streams over a real socket (real Redis)', () => {
  let redis: ManagedProcess;
  let domain: TestDomain;
  let app: App;
  let server: ServerType;
  let base: string;
  beforeAll(async () => {
    redis = await startTestRedis();
    domain = buildTestDomain({ redisUrl: redis.url });
    app = newApp({
      logger: domain.ctx.logger,
      recorder: domain.ctx.recorder,
      readiness: [],
      domain: domain.ctx,
      eventStreams: { maxStreams: 6, heartbeatMs: 400, discoverMs: 300 },
    });
    server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    // Streams a failed test left open must not hold the server.
    (server as unknown as { closeAllConnections?: () => void })?.closeAllConnections?.();
    await new Promise((r) => server?.close(r));
    await domain?.close();
    await redis?.stop();
  });

  const move = (id: string, to: Phase, reason = `to ${to}`) =>
    domain.ctx.store.mutate(id, (r: Rollout) => ({
      next: { ...r, phase: to },
      events: [{ time: Date.now(), type: 'transition', from: r.phase, to, reason }],
    }));
  const clients = async () =>
    ((await domain.redis.call('CLIENT', 'LIST')) as string).trim().split('\n').length;

  it('sends history then live events with their stream ids, resumes after Last-Event-ID, and ends after the terminal event', async () => {
    const { rollout } = await startRollout({ ctx: domain.ctx, input: specFor('reviews') });
    await move(rollout.id, 'initializing');
    const baseline = await clients();

    const a = await SseClient.open(`${base}/api/v1/rollouts/${rollout.id}/events`);
    expect(a.status).toBe(200);
    expect(a.contentType).toContain('text/event-stream');
    await a.until((m) => m.filter((x) => x.data).length >= 2);
    const stored = await domain.ctx.store.events(rollout.id);
    expect(a.events().map((e) => [e.id, e.type, e.to])).toEqual(stored.map((e) => [e.id, e.type, e.to]));
    expect(a.messages.filter((m) => m.data).map((m) => m.id)).toEqual(stored.map((e) => e.id));

    // Live: an event written after the client connected arrives.
    await move(rollout.id, 'progressing');
    await a.until(() => a.events().some((e) => e.to === 'progressing'));
    // Heartbeat comments while nothing happens.
    await a.until((m) => m.some((x) => x.comment === 'heartbeat'));
    const seen = a.events();
    a.close();
    // The client went away: its Redis connection is closed.
    await eventually(async () => ((await clients()) <= baseline ? true : undefined), 10_000);

    // Meanwhile the rollout moves on; a reconnect with Last-Event-ID gets only what it missed.
    await move(rollout.id, 'rolling-back', 'aborted by test');
    const b = await SseClient.open(`${base}/api/v1/rollouts/${rollout.id}/events`, {
      'Last-Event-ID': seen.at(-1)!.id,
    });
    await b.until(() => b.events().some((e) => e.to === 'rolling-back'));
    expect(b.events().map((e) => e.to)).toEqual(['rolling-back']);
    await move(rollout.id, 'aborted', 'aborted by test');
    await b.until(() => b.closed);
    expect(b.events().map((e) => e.to)).toEqual(['rolling-back', 'aborted']);
    const end = b.messages.at(-1)!;
    expect(end.event).toBe('end');
    expect(JSON.parse(end.data!)).toEqual({ rolloutId: rollout.id, phase: 'aborted' });

    // An ended rollout: the whole history, then the end, at once. ?after= works like Last-Event-ID.
    const c = await SseClient.open(`${base}/api/v1/rollouts/${rollout.id}/events`);
    await c.until(() => c.closed);
    expect(c.events().map((e) => e.type)).toEqual([
      'created',
      'transition',
      'transition',
      'transition',
      'transition',
    ]);
    const d = await SseClient.open(`${base}/api/v1/rollouts/${rollout.id}/events?after=${seen.at(-1)!.id}`);
    await d.until(() => d.closed);
    expect(d.events().map((e) => e.to)).toEqual(['rolling-back', 'aborted']);
    await eventually(async () => ((await clients()) <= baseline ? true : undefined), 10_000);
  });

  it('answers a malformed after / Last-Event-ID, an unknown rollout, and too many streams in the envelope', async () => {
    const { rollout } = await startRollout({ ctx: domain.ctx, input: specFor('ratings') });
    const get = (path: string, headers: Record<string, string> = {}) =>
      fetch(`${base}${path}`, { headers: { Accept: 'text/event-stream', ...headers } });
    for (const [path, headers, field] of [
      [`/api/v1/rollouts/${rollout.id}/events?after=zzz`, {}, 'after'],
      [`/api/v1/rollouts/${rollout.id}/events`, { 'Last-Event-ID': 'zzz' }, 'Last-Event-ID'],
      ['/api/v1/events?after=1-2-3', {}, 'after'],
      ['/api/v1/events', { 'Last-Event-ID': 'x' }, 'Last-Event-ID'],
    ] as const) {
      const res = await get(path, headers);
      expect(res.status, path).toBe(400);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('BAD_REQUEST');
      expect(body.error.message).toMatch(new RegExp(`^${field}: `));
    }
    // An empty Last-Event-ID (a client that saw nothing yet) is no id: the whole history follows.
    const fresh = await SseClient.open(`${base}/api/v1/rollouts/${rollout.id}/events`, {
      'Last-Event-ID': '',
    });
    expect(fresh.status).toBe(200);
    await fresh.until(() => fresh.events().length === 1);
    fresh.close();
    // The JSON form of the route refuses it too (it used to answer 500).
    const json = await fetch(`${base}/api/v1/rollouts/${rollout.id}/events?after=zzz`);
    expect(json.status).toBe(400);
    expect((await get('/api/v1/rollouts/ro-000000/events')).status).toBe(404);

    const open = await Promise.all(
      Array.from({ length: 6 }, () => SseClient.open(`${base}/api/v1/rollouts/${rollout.id}/events`)),
    );
    expect(open.map((c) => c.status)).toEqual([200, 200, 200, 200, 200, 200]);
    const over = await get(`/api/v1/rollouts/${rollout.id}/events`);
    expect(over.status).toBe(503);
    expect(over.headers.get('Retry-After')).toBe('5');
    expect(((await over.json()) as { error: { code: string } }).error.code).toBe('UNAVAILABLE');
    for (const c of open) c.close();
    // Slots come back when clients leave.
    await eventually(async () => {
      const again = await SseClient.open(`${base}/api/v1/rollouts/${rollout.id}/events`);
      again.close();
      return again.status === 200 ? true : undefined;
    }, 10_000);
  });

  it('ends every open stream when the process shuts down (the signal), so the server can close', async () => {
    const stop = new AbortController();
    const other = newApp({
      logger: domain.ctx.logger,
      recorder: domain.ctx.recorder,
      readiness: [],
      domain: domain.ctx,
      eventStreams: { signal: stop.signal },
    });
    const srv = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: other.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
    });
    const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    const { rollout } = await startRollout({ ctx: domain.ctx, input: specFor('shutdown') });
    const one = await SseClient.open(`${url}/api/v1/rollouts/${rollout.id}/events`);
    const all = await SseClient.open(`${url}/api/v1/events`);
    await one.until(() => one.events().length === 1);
    stop.abort();
    await one.until(() => one.closed);
    await all.until(() => all.closed);
    const closed = new Promise<void>((resolve) => srv.close(() => resolve()));
    await closed;
  });

  it('GET /api/v1/events streams every rollout’s events, new rollouts included, and resumes after Last-Event-ID', async () => {
    const { rollout: old } = await startRollout({ ctx: domain.ctx, input: specFor('details') });
    const all = await SseClient.open(`${base}/api/v1/events`);
    expect(all.status).toBe(200);
    // Nothing from before the connection.
    await all.until((m) => m.some((x) => x.comment === 'heartbeat'));
    expect(all.events()).toEqual([]);

    await move(old.id, 'initializing');
    const { rollout: fresh } = await startRollout({ ctx: domain.ctx, input: specFor('productpage') });
    await all.until(() => all.events().length >= 2);
    await move(fresh.id, 'rolling-back');
    await move(fresh.id, 'failed');
    await all.until(() => all.events().some((e) => e.to === 'failed'));
    const got = all.events().map((e) => [e.rolloutId, e.type, e.to ?? null]);
    expect(got).toContainEqual([old.id, 'transition', 'initializing']);
    expect(got).toContainEqual([fresh.id, 'created', 'pending']);
    expect(got.filter(([id]) => id === fresh.id).map(([, t, to]) => `${t}:${to}`)).toEqual([
      'created:pending',
      'transition:rolling-back',
      'transition:failed',
    ]);
    // Every message's id is its event's id and its rollout's, and it names the rollout's namespace.
    for (const m of all.messages.filter((x) => x.data)) {
      const e = JSON.parse(m.data!) as { id: string; rolloutId: string };
      expect(m.id).toBe(`${e.id}@${e.rolloutId}`);
      expect(JSON.parse(m.data!).namespace).toBe('bookinfo');
    }
    const firstTwo = all.messages
      .filter((x) => x.data)
      .slice(0, 2)
      .map((x) => ({ ...JSON.parse(x.data!), mid: x.id! }));
    all.close();

    // ?namespace= keeps only that namespace's rollouts.
    const elsewhere = await SseClient.open(`${base}/api/v1/events?namespace=shop`);
    const here = await SseClient.open(`${base}/api/v1/events?namespace=bookinfo`);
    await here.until((m) => m.some((x) => x.comment === 'heartbeat'));
    await elsewhere.until((m) => m.some((x) => x.comment === 'heartbeat'));
    await move(old.id, 'progressing');
    await here.until(() => here.events().some((e) => e.rolloutId === old.id && e.to === 'progressing'));
    await elsewhere.until((m) => m.filter((x) => x.comment === 'heartbeat').length >= 3);
    expect(elsewhere.events()).toEqual([]);
    here.close();
    elsewhere.close();

    const resumed = await SseClient.open(`${base}/api/v1/events`, { 'Last-Event-ID': firstTwo[0]!.mid });
    const mids = () => resumed.events().map((e) => `${e.id}@${e.rolloutId}`);
    await resumed.until(
      () => mids().includes(firstTwo[1]!.mid) && resumed.events().some((e) => e.to === 'failed'),
    );
    expect(mids()).not.toContain(firstTwo[0]!.mid);
    resumed.close();
  });
  it('GET /api/v1/events for a token limited to namespaces: only its namespaces, with or without ?namespace=', async () => {
    const sha = (t: string) => createHash('sha256').update(t).digest('hex');
    const scopedApp = newApp({
      logger: domain.ctx.logger,
      recorder: domain.ctx.recorder,
      readiness: [],
      domain: domain.ctx,
      scopedTokens: [
        { name: 'shop-reader', sha256: sha('shop-token'), scopes: ['read'], namespaces: ['shop'] },
      ],
      eventStreams: { maxStreams: 6, heartbeatMs: 400, discoverMs: 300 },
    });
    const scopedServer = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: scopedApp.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
    });
    const at = `http://127.0.0.1:${(scopedServer.address() as AddressInfo).port}`;
    const auth = { Authorization: 'Bearer shop-token' };
    try {
      const mine = await SseClient.open(`${at}/api/v1/events`, auth);
      expect(mine.status).toBe(200);
      const named = await SseClient.open(`${at}/api/v1/events?namespace=shop`, auth);
      expect(named.status).toBe(200);
      await mine.until((m) => m.some((x) => x.comment === 'heartbeat'));
      await named.until((m) => m.some((x) => x.comment === 'heartbeat'));

      const spec = (name: string, namespace: string) =>
        specFor(name, { target: { namespace, virtualService: name, destinationRule: name } });
      const other = (await startRollout({ ctx: domain.ctx, input: spec('ns-other', 'bookinfo') })).rollout;
      const own = (await startRollout({ ctx: domain.ctx, input: spec('ns-own', 'shop') })).rollout;
      await move(other.id, 'initializing');
      await move(own.id, 'initializing');
      for (const client of [mine, named]) {
        await client.until(() =>
          client.events().some((e) => e.rolloutId === own.id && e.to === 'initializing'),
        );
        // Both rollouts' events were written before this one: the other namespace's never came.
        expect(client.events().map((e) => e.rolloutId)).not.toContain(other.id);
        for (const e of client.events()) expect((e as { namespace?: string }).namespace).toBe('shop');
      }
      mine.close();
      named.close();

      // Naming a namespace outside the token's stays a 403 that names it.
      const refused = await fetch(`${at}/api/v1/events?namespace=bookinfo`, {
        headers: { Accept: 'text/event-stream', ...auth },
      });
      expect(refused.status).toBe(403);
      const body = (await refused.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('FORBIDDEN');
      expect(body.error.message).toContain("may not act in namespace 'bookinfo'");
    } finally {
      (scopedServer as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      await new Promise((r) => scopedServer.close(r));
    }
  });

  it('GET /api/v1/events resumes exactly when two rollouts have events with the same id (the same millisecond)', async () => {
    const a = (await startRollout({ ctx: domain.ctx, input: specFor('tie-a') })).rollout.id;
    const b = (await startRollout({ ctx: domain.ctx, input: specFor('tie-b') })).rollout.id;
    const [first, second] = [a, b].sort();
    // Just ahead of the newest event: the stream holds events back until Redis's clock passes them.
    const t = (await domain.ctx.store.serverTimeMs()) + 300;
    const at = (id: string, seq: number) =>
      domain.redis.xadd(
        domain.ctx.store.eventsKey(id),
        `${t}-${seq}`,
        'e',
        JSON.stringify({ time: t, type: 'error', reason: `tie ${seq} of ${id}` }),
      );
    await at(first!, 0);
    await at(second!, 0);
    await at(first!, 1);
    // Seen: the first rollout's event t-0. Owed: the second's t-0 (same id), then the first's t-1.
    const c = await SseClient.open(`${base}/api/v1/events`, { 'Last-Event-ID': `${t}-0@${first}` });
    await c.until(() => c.events().length >= 2);
    expect(c.events().map((e) => [e.rolloutId, e.id])).toEqual([
      [second, `${t}-0`],
      [first, `${t}-1`],
    ]);
    c.close();
  });
});
