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
});
