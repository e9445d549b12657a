import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { requestId } from './request-id.ts';

function app() {
  const a = new Hono<{ Variables: { requestId: string } }>();
  a.use(requestId({ generate: () => 'generated-1' }));
  a.get('/', (c) => c.text(c.get('requestId')));
  return a;
}

describe('requestId', () => {
  it('keeps a safe id sent by the caller and echoes it', async () => {
    const res = await app().request('/', { headers: { 'X-Request-Id': 'ci-build-42' } });
    expect(await res.text()).toBe('ci-build-42');
    expect(res.headers.get('X-Request-Id')).toBe('ci-build-42');
  });
  it('replaces an id that would corrupt log lines', async () => {
    const res = await app().request('/', { headers: { 'X-Request-Id': 'bad id; with spaces' } });
    expect(await res.text()).toBe('generated-1');
  });
  it('generates one when none is sent', async () => {
    const res = await app().request('/');
    expect(res.headers.get('X-Request-Id')).toBe('generated-1');
  });
  it('echoes it over the Node HTTP server too, on answers and errors alike', async () => {
    const a = app();
    a.get('/json', (c) => c.json({ ok: true }, 201, { 'X-Other': 'kept' }));
    a.get('/boom', () => {
      throw new Error('boom');
    });
    a.onError((_e, c) => c.json({ error: 'boom' }, 500));
    const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
      const s = serve({ fetch: a.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
    });
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const ok = await fetch(`${base}/json`, { headers: { 'X-Request-Id': 'ci-build-43' } });
      expect(ok.status).toBe(201);
      expect(ok.headers.get('X-Request-Id')).toBe('ci-build-43');
      expect(ok.headers.get('X-Other')).toBe('kept');
      expect(ok.headers.get('Content-Type')).toBe('application/json');
      expect(await ok.json()).toEqual({ ok: true });
      const failed = await fetch(`${base}/boom`);
      expect(failed.status).toBe(500);
      expect(failed.headers.get('X-Request-Id')).toBe('generated-1');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
