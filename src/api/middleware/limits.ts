import type { Context, MiddlewareHandler, Next } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { AppEnv } from '../context.ts';
import { ApiError } from '../errors.ts';

/** 1 MB: a rollout spec is a few KB; anything near this is a mistake or an attack. */
export const MAX_BODY_BYTES = 1024 * 1024;
export const MAX_JSON_DEPTH = 32;

export interface BodySizeOptions {
  /** Largest accepted body in bytes. Default 1 MB. */
  maxBytes?: number;
}

/**
 * 413 for a body over the limit, decided from Content-Length when there is one and while
 * reading otherwise, so an oversized body is never read whole.
 */
export function bodySize({ maxBytes = MAX_BODY_BYTES }: BodySizeOptions = {}): MiddlewareHandler<AppEnv> {
  const limit = bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new ApiError(
        'PAYLOAD_TOO_LARGE',
        `the request body is larger than ${Math.round(maxBytes / 1024)} KB; send a smaller one`,
        { maxBytes },
      );
    },
  }) as MiddlewareHandler<AppEnv>;
  // Not async: a GET (no body; touching c.req.raw would build a full Request for nothing) passes
  // straight on without a promise of its own.
  return function bodySizeMiddleware(c, next) {
    if (!hasBody(c.req.method)) return next();
    return limit(c, next);
  };
}

function hasBody(method: string): boolean {
  return method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS';
}

/**
 * The deepest nesting of arrays and objects in a JSON text, found by scanning (no parse, no
 * recursion), stopping as soon as it passes `max`.
 */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 92 /* \ */) i++;
      else if (ch === 34 /* " */) inString = false;
      continue;
    }
    if (ch === 34) inString = true;
    else if (ch === 123 /* { */ || ch === 91 /* [ */) {
      if (++depth > max) return true;
    } else if (ch === 125 || ch === 93) depth--;
  }
  return false;
}

export interface JsonDepthOptions {
  /** Deepest nesting accepted. Default 32. */
  max?: number;
}

/** 400 for a JSON body nested deeper than `max`, before anything parses it. */
export function jsonDepth({ max = MAX_JSON_DEPTH }: JsonDepthOptions = {}): MiddlewareHandler<AppEnv> {
  const check = async (c: Context<AppEnv>, next: Next) => {
    const text = await c.req.text();
    if (jsonDepthExceeds(text, max)) {
      throw new ApiError('BAD_REQUEST', `body: JSON nested deeper than ${max} levels`, { maxDepth: max });
    }
    return next();
  };
  // Not async: a request without a JSON body passes straight on without a promise of its own.
  return function jsonDepthMiddleware(c, next) {
    if (hasBody(c.req.method) && /json/i.test(c.req.header('content-type') ?? '') && c.req.raw.body) {
      return check(c, next);
    }
    return next();
  };
}

export interface RequestTimeoutOptions {
  /** How long a request may take, in ms. Default 15000. */
  ms?: number;
}

/**
 * 504 in the envelope when a request takes longer than `ms` (a stuck dependency must not hold a
 * client forever). One timer and one promise per request, settled by whichever comes first: the
 * rest of the chain or the timer (cheaper than racing two promises).
 */
export function requestTimeout({ ms = 15_000 }: RequestTimeoutOptions = {}): MiddlewareHandler<AppEnv> {
  return function requestTimeoutMiddleware(_c, next) {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new ApiError('TIMEOUT', `the request took longer than ${ms}ms; retry it`, undefined, {
              'Retry-After': '1',
            }),
          ),
        ms,
      );
      next().then(
        () => {
          clearTimeout(timer);
          resolve();
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(e);
        },
      );
    });
  };
}
