import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectRedis, pingRedis, type Redis } from '../../src/redis.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { startTestRedis } from '../helpers/services.ts';

describe('a real redis-server', () => {
  let server: ManagedProcess;
  let redis: Redis;
  beforeAll(async () => {
    server = await startTestRedis();
    redis = connectRedis(server.url, { role: 'client' });
  });
  afterAll(async () => {
    await redis?.quit();
    await server?.stop();
  });

  it('runs on a private, non-default port', () => {
    expect(server.port).not.toBe(6379);
  });

  it('writes and reads back', async () => {
    await pingRedis(redis, 2_000);
    await redis.hset('vane:test:h', { a: '1', b: 'two' });
    expect(await redis.hgetall('vane:test:h')).toEqual({ a: '1', b: 'two' });
    expect(await redis.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
  });
});
