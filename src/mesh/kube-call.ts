import type { ConfigurationOptions, KubeConfig } from '@kubernetes/client-node';
import type { Dispatcher } from 'undici';
import type { Logger } from '../observability/logger.ts';
import { MeshError } from './types.ts';

/** How every call to the Kubernetes API is bounded. */
export interface CallPolicy {
  /** Deadline of one HTTP call, ms. Default 10000. */
  timeoutMs?: number;
  /** Retries of a transient failure (429, 5xx, timeout, connection error) of one call. Default 4. */
  maxRetries?: number;
  /** First backoff, ms; it doubles per retry (jittered) up to 5 s. Default 200. */
  backoffMs?: number;
  logger?: Logger;
  /** Told of every HTTP answer (method, status) and of every call with no answer (status 'error'), for metrics. */
  onResult?: (method: string, status: number | 'error') => void;
  /** The connection pool of the cluster called (see KubeConnections). Default: client-node's own. */
  dispatcher?: () => Promise<Dispatcher | undefined>;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Jittered exponential backoff: half fixed, half random, so retrying clients spread out. */
export function backoff(base: number, attempt: number, capMs = 5_000): number {
  const d = Math.min(capMs, base * 2 ** attempt);
  return d / 2 + Math.random() * (d / 2);
}

interface ApiErrorLike {
  code?: number;
  body?: unknown;
  headers?: Record<string, string>;
  name?: string;
  message?: string;
  cause?: unknown;
}

/** The HTTP status of a client-node ApiException, or undefined for network errors and timeouts. */
export function statusOf(e: unknown): number | undefined {
  const code = (e as ApiErrorLike)?.code;
  return typeof code === 'number' && code >= 100 && code < 600 ? code : undefined;
}

/** The message of a Kubernetes Status body, when the error carries one. */
function statusMessage(e: unknown): string | undefined {
  let body = (e as ApiErrorLike)?.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      return (body as string).trim().slice(0, 300) || undefined;
    }
  }
  const m = (body as { message?: unknown } | undefined)?.message;
  return typeof m === 'string' ? m : undefined;
}

function retryAfterMs(e: unknown): number | undefined {
  const h = (e as ApiErrorLike)?.headers;
  const v = h?.['retry-after'] ?? h?.['Retry-After'];
  const n = v === undefined ? Number.NaN : Number(v);
  return Number.isFinite(n) && n >= 0 ? Math.min(n * 1000, 30_000) : undefined;
}

const TRANSIENT = new Set([429, 500, 502, 503, 504]);

/** The call timed out (our abort deadline) or the connection failed, as undici reports them. */
export function isNetworkError(e: unknown): boolean {
  if (!(e instanceof Error) || e instanceof MeshError) return false;
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return true;
  return e instanceof TypeError && /fetch failed|terminated|socket/i.test(e.message);
}

function isTransient(e: unknown): boolean {
  const s = statusOf(e);
  return s !== undefined ? TRANSIENT.has(s) : isNetworkError(e);
}

/** Maps a failed call to the MeshError the engine branches on. */
export function toMeshError(e: unknown, what: string): MeshError {
  if (e instanceof MeshError) return e;
  const s = statusOf(e);
  const detail = statusMessage(e) ?? (e as Error)?.message ?? String(e);
  switch (s) {
    case 404:
      return new MeshError('NotFound', `${what}: not found (${detail})`, false);
    case 401:
    case 403:
      return new MeshError(
        'Forbidden',
        `${what}: forbidden (${detail}); give vane's service account get, list and update on it`,
        false,
      );
    case 409:
      return new MeshError('Conflict', `${what}: conflict (${detail})`, true);
    case 400:
    case 422:
      return new MeshError('Invalid', `${what}: the API server refused it (${detail})`, false);
    case undefined:
      return new MeshError('Unavailable', `${what}: the API server did not answer (${detail})`, true);
    default:
      if (TRANSIENT.has(s))
        return new MeshError('Unavailable', `${what}: API server error ${s} (${detail})`, true);
      return new MeshError('Invalid', `${what}: API server answered ${s} (${detail})`, false);
  }
}

/** client-node's own Observable stand-in: its middleware chain only calls toPromise (and pipe). */
function observableOf<T>(value: T | Promise<T>) {
  const promise = Promise.resolve(value);
  const o = {
    toPromise: () => promise,
    pipe: <R>(f: (v: T) => R | Promise<R>) => ({ toPromise: () => promise.then(f) }),
  };
  return o;
}

/** Request options that abort the HTTP call after `timeoutMs` (client-node has no timeout of its own). */
export function timeoutOptions(
  timeoutMs: number,
  onResult?: (method: string, status: number) => void,
  dispatcher?: () => Promise<Dispatcher | undefined>,
): ConfigurationOptions {
  let method = 'unknown';
  const mw = {
    pre: (ctx: {
      setSignal(s: AbortSignal): void;
      getHttpMethod?(): string;
      setDispatcher?(d: Dispatcher): void;
    }) => {
      ctx.setSignal(AbortSignal.timeout(timeoutMs));
      method = ctx.getHttpMethod?.() ?? 'unknown';
      if (!dispatcher) return observableOf(ctx);
      // Runs after client-node's authentication, so the pooled dispatcher replaces the per-request one.
      return observableOf(
        dispatcher().then((d) => {
          if (d) ctx.setDispatcher?.(d);
          return ctx;
        }),
      );
    },
    post: <R>(r: R) => {
      const status = (r as { httpStatusCode?: number }).httpStatusCode;
      if (onResult && typeof status === 'number') onResult(method, status);
      return observableOf(r);
    },
  };
  return { middleware: [mw], middlewareMergeStrategy: 'append' } as unknown as ConfigurationOptions;
}

/**
 * Runs one API call with a deadline and bounded retries of transient failures (respecting
 * Retry-After); anything else, or the last failure, becomes a MeshError naming `what`.
 */
export async function callKube<T>(
  policy: CallPolicy,
  what: string,
  fn: (options: ConfigurationOptions) => Promise<T>,
  passThrough: (status: number | undefined) => boolean = () => false,
): Promise<T> {
  const timeoutMs = policy.timeoutMs ?? 10_000;
  const maxRetries = policy.maxRetries ?? 4;
  const base = policy.backoffMs ?? 200;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(timeoutOptions(timeoutMs, policy.onResult, policy.dispatcher));
    } catch (e) {
      if (statusOf(e) === undefined && isNetworkError(e)) policy.onResult?.('unknown', 'error');
      if (passThrough(statusOf(e))) throw e;
      // Neither an API answer nor a network failure: a bug, which a MeshError would hide.
      if (statusOf(e) === undefined && !isNetworkError(e)) throw e;
      if (!isTransient(e) || attempt >= maxRetries) throw toMeshError(e, what);
      const wait = Math.max(retryAfterMs(e) ?? 0, backoff(base, attempt));
      policy.logger?.warn(
        {
          what,
          attempt: attempt + 1,
          status: statusOf(e),
          waitMs: Math.round(wait),
          err: (e as Error).message,
        },
        'kubernetes call failed; retrying',
      );
      await sleep(wait);
    }
  }
}

/** A copy of a kubeconfig switched to another context (one cluster per context). */
export function withContext(kc: KubeConfig, context: string | undefined, make: () => KubeConfig): KubeConfig {
  if (!context || context === kc.getCurrentContext()) return kc;
  if (!kc.getContextObject(context)) {
    const names = kc.getContexts().map((c) => c.name);
    throw new MeshError(
      'Invalid',
      `kubeconfig has no context '${context}'; contexts are: ${names.join(', ')}`,
      false,
    );
  }
  const copy = make();
  copy.loadFromOptions({
    clusters: kc.getClusters(),
    users: kc.getUsers(),
    contexts: kc.getContexts(),
    currentContext: context,
  });
  return copy;
}
