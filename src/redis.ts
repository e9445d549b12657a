import { createHash } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';

export type { Redis };

export interface RedisConnectOptions {
  /** A worker connection blocks on BRPOPLPUSH and must retry forever (BullMQ requires maxRetriesPerRequest null). */
  role: 'worker' | 'client';
  /** Connection name shown by CLIENT LIST. */
  name?: string;
  /**
   * Whether the connection comes back by itself after it is lost. Default true. Off for a
   * connection whose server-side state (CLIENT TRACKING, a subscription) must be rebuilt by its
   * owner, who then makes a new one.
   */
  reconnect?: boolean;
  /** Whether commands of the same tick share one socket write. Default true for a client connection. */
  autoPipelining?: boolean;
  /**
   * RESP version. Default 3 (ioredis's). 2 for a connection that receives invalidations as pub/sub
   * messages of `__redis__:invalidate`: to a RESP3 connection Redis sends them as push frames,
   * which ioredis does not hand on.
   */
  protocol?: 2 | 3;
}

/**
 * One Redis connection. Reconnects forever with a capped backoff, so a process outlives a Redis
 * restart. A client connection gives up on a command after a few seconds instead of waiting for
 * Redis forever, so API calls answer; /readyz checks the connection state first and answers at once.
 */
export function connectRedis(
  url: string,
  { role, name, reconnect = true, autoPipelining = role === 'client', protocol = 3 }: RedisConnectOptions,
): Redis {
  const options: RedisOptions = {
    lazyConnect: false,
    connectTimeout: 3_000,
    connectionName: name,
    retryStrategy: reconnect ? (times) => Math.min(100 * 2 ** Math.min(times, 4), 1_000) : () => null,
    maxRetriesPerRequest: role === 'worker' ? null : 1,
    // Commands sent while (re)connecting wait in the queue; a client's fail within its command timeout.
    enableOfflineQueue: true,
    commandTimeout: role === 'worker' ? undefined : 5_000,
    // Commands issued in the same tick share one socket write (e.g. the HMGETs of concurrent API
    // reads): one write per command was the largest cost of GET /api/v1/rollouts/{id}.
    enableAutoPipelining: autoPipelining,
    protocol,
  };
  const redis = new Redis(url, options);
  // Errors surface through commands and /readyz; an 'error' listener keeps them from crashing the process.
  redis.on('error', () => {});
  return redis;
}

/** PING with a deadline; resolves when Redis answers, rejects with the reason otherwise. */
export async function pingRedis(redis: Redis, timeoutMs = 1_000): Promise<void> {
  if (redis.status === 'connecting' || redis.status === 'connect') {
    // A fresh connection: give it the same deadline to come up.
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        redis.once('ready', resolve);
        redis.once('close', () => reject(new Error('connection refused')));
      }),
      timeoutMs,
      'connect',
    );
  }
  if (redis.status !== 'ready') throw new Error(`not connected (${redis.status})`);
  await withTimeout(redis.ping(), timeoutMs, 'PING');
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms}ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * A Lua script called by its SHA1 (EVALSHA), so each call sends the hash instead of the script's
 * text; when Redis does not know it yet (a restart, SCRIPT FLUSH) it is sent once with EVAL.
 */
export class LuaScript {
  readonly sha: string;
  constructor(readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  async run(redis: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (e) {
      if (!(e instanceof Error) || !e.message.startsWith('NOSCRIPT')) throw e;
      return redis.eval(this.lua, keys.length, ...keys, ...args);
    }
  }
}
