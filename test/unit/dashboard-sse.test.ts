import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/services.ts';

// The dashboard's SSE client as the browser runs it, against a local server that drops the stream.
const store = new Map<string, string>();
Object.assign(globalThis, {
  sessionStorage: {
    getItem: (k: string) => store.get(k) ?? null,
    setItem: (k: string, v: string) => store.set(k, v),
    removeItem: (k: string) => store.delete(k),
  },
});
const { followEvents } = await import(
  pathToFileURL(join(import.meta.dirname, '../../src/api/ui/assets/sse.js')).href
);

describe('the dashboard SSE client', () => {
  let server: Server;
  let url: string;
  const requests: IncomingHttpHeaders[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      requests.push(req.headers);
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      const last = req.headers['last-event-id'];
      res.write('retry: 50\n\n');
      if (!last) {
        // History, then the connection drops without an end.
        res.write('id: 100-0\ndata: {"type":"weight","n":1}\n\n: heartbeat\n\n');
        res.end('id: 100-1\ndata: {"type":"weight","n":2}\n\n');
      } else {
        // A resumed stream may repeat the last event; the client drops what it has seen.
        res.write('id: 100-1\ndata: {"type":"weight","n":2}\n\n');
        res.write('id: 101-0\ndata: {"type":"transition","n":3}\n\n');
        res.end('event: end\ndata: {"phase":"aborted"}\n\n');
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('sends the bearer header, reconnects with Last-Event-ID after a drop, delivers each event once, and stops at the end', async () => {
    store.set('vane.token', 'secret-token');
    const got: { n: number; id: string }[] = [];
    const states: string[] = [];
    let end: unknown;
    followEvents(url, {
      onEvent: (e: { n: number; id: string }) => got.push({ n: e.n, id: e.id }),
      onEnd: (d: unknown) => {
        end = d;
      },
      onStatus: (s: string) => states.push(s),
    });
    await eventually(async () => (end ? true : undefined), 5_000);
    expect(got).toEqual([
      { n: 1, id: '100-0' },
      { n: 2, id: '100-1' },
      { n: 3, id: '101-0' },
    ]);
    expect(end).toEqual({ phase: 'aborted' });
    expect(states).toEqual(['live', 'reconnecting', 'live', 'ended']);
    expect(requests.map((h) => h['last-event-id'])).toEqual([undefined, '100-1']);
    expect(requests.every((h) => h.authorization === 'Bearer secret-token')).toBe(true);
    expect(requests.every((h) => h.accept === 'text/event-stream')).toBe(true);
    // No reconnection after the end.
    await new Promise((r) => setTimeout(r, 200));
    expect(requests).toHaveLength(2);
  });
});
