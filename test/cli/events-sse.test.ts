import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/cli/client.ts';
import { type EventView, followEvents, SseParser } from '../../src/cli/events.ts';
import { vane } from './harness.ts';

describe('SseParser', () => {
  it('dispatches on blank lines, joins data lines, keeps the last id, ignores comments, handles CRLF split across chunks', () => {
    const p = new SseParser();
    const out = [
      ...p.feed(': a comment\r'),
      ...p.feed('\nid: 1-0\r\nevent: rollout\r\ndata: {"a":\r'),
      ...p.feed('\ndata: 1}\r\n\r\n'),
      ...p.feed('data: second\n\nretry: 1500\nid: 2-0\n'),
      ...p.feed('data:third\r\r'), // the last CR may be half of a CRLF: held until more comes
      ...p.feed('', true),
    ];
    expect(out).toEqual([
      { id: '1-0', event: 'rollout', data: '{"a":\n1}' },
      { id: '1-0', event: 'message', data: 'second' },
      { id: '2-0', event: 'message', data: 'third' },
    ]);
    expect(p.retryMs).toBe(1500);
    // an event without data dispatches nothing; an id with NUL is ignored
    expect(p.feed('id: 3\0x\nevent: ping\n\n')).toEqual([]);
    expect(p.lastEventId).toBe('2-0');
  });
});

const EVENTS: (EventView & { id: string })[] = [
  { id: '1-0', time: 1, type: 'created', reason: 'started' },
  { id: '2-0', time: 2, type: 'transition', from: 'pending', to: 'progressing', reason: 'preflight passed' },
  { id: '3-0', time: 3, type: 'weight', reason: 'step 1', weights: { stable: 75, canary: 25 } },
  { id: '4-0', time: 4, type: 'analysis', verdict: 'fail', reason: 'success-rate 80 < 99' },
  {
    id: '5-0',
    time: 5,
    type: 'transition',
    from: 'progressing',
    to: 'rolling-back',
    reason: 'analysis failed',
  },
  { id: '6-0', time: 6, type: 'transition', from: 'rolling-back', to: 'failed', reason: 'rolled back' },
];

/** A tiny SSE server: the first connection sends three events and is cut; the rest resume after Last-Event-ID. */
function sseServer(): Promise<{
  server: Server;
  url: string;
  requests: { lastEventId?: string; accept?: string }[];
}> {
  const requests: { lastEventId?: string; accept?: string }[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const lastEventId = req.headers['last-event-id'] as string | undefined;
    requests.push({ ...(lastEventId ? { lastEventId } : {}), accept: req.headers.accept });
    if (!req.url?.startsWith('/api/v1/rollouts/ro-sse/events')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'NOT_FOUND', message: 'no such rollout', requestId: 'r' } }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(': hello\n\n');
    const from = lastEventId ? EVENTS.findIndex((e) => e.id === lastEventId) + 1 : 0;
    const send = (e: EventView & { id: string }) =>
      res.write(`id: ${e.id}\nevent: rollout\ndata: ${JSON.stringify({ ...e, id: undefined })}\n\n`);
    if (requests.length === 1) {
      for (const e of EVENTS.slice(0, 3)) send(e);
      // a dropped connection in the middle of the fourth message
      res.write('id: 4-0\ndata: {"time":4,');
      setTimeout(() => res.socket?.destroy(), 50);
      return;
    }
    for (const e of EVENTS.slice(from)) send(e);
    res.end(); // the server closes after the terminal event
  });
  return new Promise((r) =>
    server.listen(0, '127.0.0.1', () =>
      r({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, requests }),
    ),
  );
}

// Each CLI run is a Node process starting tsx; on a loaded machine that takes seconds.
describe('events --follow over SSE', { timeout: 240_000 }, () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
  });

  it('followEvents resumes with Last-Event-ID after a dropped connection and sees every event once', async () => {
    const s = await sseServer();
    server = s.server;
    const seen: EventView[] = [];
    const result = await followEvents(new ApiClient({ server: s.url }), 'ro-sse', {
      onEvent: (e) => seen.push(e),
      deadline: Date.now() + 20_000,
    });
    expect(result).toMatchObject({ phase: 'failed', timedOut: false, mode: 'sse', connections: 2 });
    expect(seen.map((e) => e.id)).toEqual(EVENTS.map((e) => e.id));
    expect(s.requests).toEqual([
      { accept: 'text/event-stream' },
      { lastEventId: '3-0', accept: 'text/event-stream' },
    ]);
  });

  it('the CLI prints every event once and exits 1 for a failed rollout; API errors exit 2', async () => {
    const s = await sseServer();
    server = s.server;
    const r = await vane(['rollout', 'events', 'ro-sse', '--follow', '--server', s.url, '-o', 'json']);
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((e) => e.id)).toEqual(EVENTS.map((e) => e.id));
    expect(lines.at(-1)).toMatchObject({ type: 'transition', to: 'failed' });
    expect(s.requests.at(-1)?.lastEventId).toBe('3-0');

    const missing = await vane(['rollout', 'events', 'ro-other', '--follow', '--server', s.url]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe('vane: NOT_FOUND: no such rollout');
  });
});
