import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import type { ApiError } from '../errors.ts';
import { bearerAuth } from './bearer-auth.ts';

function app(tokens: string[]) {
  const a = new Hono();
  a.use(bearerAuth({ tokens }));
  a.get('/', (c) => c.text('ok'));
  a.onError((e, c) => c.text(e.message, (e as ApiError).status as 401));
  return a;
}

describe('bearerAuth', () => {
  it('lets everything through when no token is configured', async () => {
    expect((await app([]).request('/')).status).toBe(200);
  });
  it('requires one of the tokens', async () => {
    const a = app(['s3cret', 'other']);
    expect((await a.request('/')).status).toBe(401);
    expect((await a.request('/', { headers: { Authorization: 'Bearer nope' } })).status).toBe(401);
    expect((await a.request('/', { headers: { Authorization: 'Bearer other' } })).status).toBe(200);
  });
});
