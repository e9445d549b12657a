import type { Context, MiddlewareHandler, Next } from 'hono';
import type { Redis } from '../../redis.ts';
import type { Principal } from '../auth/tokens.ts';
import type { AppEnv } from '../context.ts';
import { ApiError } from '../errors.ts';

// One round trip: count this request in the current window and say how long the window lasts.
const HIT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
`;

export interface RateLimitOptions {
  redis: Redis;
  /** Key prefix (the installation's). */
  prefix: string;
  /** Requests per principal per window. */
  limit: number;
  /** Window length in ms. Default 60000. */
  windowMs?: number;
  /** Which requests count. Default: every method but GET, HEAD and OPTIONS. */
  counts?: (method: string) => boolean;
}

/**
 * A per-token limit of mutating requests, counted in Redis so every API replica shares it:
 * 429 with Retry-After once a token used up its window.
 */
export function rateLimit({
  redis,
  prefix,
  limit,
  windowMs = 60_000,
  counts = (m) => m !== 'GET' && m !== 'HEAD' && m !== 'OPTIONS',
}: RateLimitOptions): MiddlewareHandler<AppEnv> {
  const count = async (c: Context<AppEnv>, next: Next, principal: Principal) => {
    // The window starts at a token's first counted request and ends windowMs later.
    const key = `${prefix}:ratelimit:${principal.name}`;
    const [n, ttl] = (await redis.eval(HIT, 1, key, String(windowMs))) as [number, number];
    const reset = Math.max(1, Math.ceil(ttl / 1000));
    c.header('RateLimit-Limit', String(limit));
    c.header('RateLimit-Remaining', String(Math.max(0, limit - n)));
    if (n > limit) {
      throw new ApiError(
        'RATE_LIMITED',
        `token '${principal.name}' made more than ${limit} changing requests in ${Math.round(windowMs / 1000)}s; retry after ${reset}s`,
        { limit, retryAfterSeconds: reset },
        { 'Retry-After': String(reset) },
      );
    }
    return next();
  };
  // Not async: a request that does not count (a GET) passes straight on without a promise of its own.
  return function rateLimitMiddleware(c, next) {
    const principal = c.get('principal');
    if (!principal || !counts(c.req.method)) return next();
    return count(c, next, principal);
  };
}
