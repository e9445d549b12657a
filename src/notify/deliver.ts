import { randomUUID } from 'node:crypto';
import { HEADERS, signedHeaders } from './signing.ts';

/** Where a delivery goes and what it is about (the `X-Vane-Event` header). */
export interface DeliveryTarget {
  url: string;
  event: string;
}

export interface DeliverOptions {
  /** Deadline of the whole exchange (connect, request, response body), in ms. */
  timeoutMs: number;
  /** Cancels the delivery early (e.g. a worker shutting down). */
  signal?: AbortSignal;
  /** HMAC secret; without it the request carries no X-Vane-Signature. */
  secret?: string;
  /** The `X-Vane-Delivery` id; the same across retries so a receiver can drop duplicates. Default a random UUID. */
  deliveryId?: string;
  /** 1-based attempt number, sent as `X-Vane-Attempt`. Default 1. */
  attempt?: number;
  /** Clock for the signature's timestamp (ms). Default Date.now(). */
  now?: number;
}

export interface DeliveryResult {
  /** A 2xx answer. */
  ok: boolean;
  status?: number;
  /** Why it failed: a network error, a timeout, or the status with the start of the answer. */
  error?: string;
  /** The start of the answer's body (at most 500 characters), e.g. a gate's explanation. */
  response?: string;
  ms: number;
}

const RESPONSE_CHARS = 500;

/**
 * POSTs `payload` as JSON, signed when a secret is given. Never throws for network errors,
 * timeouts or error statuses: the result says what happened. Redirects are not followed (a
 * receiver that moved is a configuration to fix, and following one would resend the body elsewhere).
 */
export async function deliver(
  target: DeliveryTarget,
  payload: unknown,
  opts: DeliverOptions,
): Promise<DeliveryResult> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
  const timeout = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
  const headers = {
    'content-type': 'application/json',
    'user-agent': 'vane-webhooks',
    ...signedHeaders({
      body,
      event: target.event,
      deliveryId: opts.deliveryId ?? randomUUID(),
      timestamp: Math.floor((opts.now ?? Date.now()) / 1000),
      ...(opts.secret ? { secret: opts.secret } : {}),
    }),
    [HEADERS.attempt]: String(opts.attempt ?? 1),
  };
  try {
    const res = await fetch(target.url, { method: 'POST', headers, body, signal, redirect: 'manual' });
    const text = (await res.text()).slice(0, RESPONSE_CHARS);
    const ok = res.status >= 200 && res.status < 300;
    return {
      ok,
      status: res.status,
      ...(text ? { response: text } : {}),
      ...(ok ? {} : { error: `answered ${res.status}${text ? `: ${oneLine(text, 200)}` : ''}` }),
      ms: ms(),
    };
  } catch (e) {
    return { ok: false, error: networkError(e, timeout, opts.timeoutMs), ms: ms() };
  }
}

function networkError(e: unknown, timeout: AbortSignal, timeoutMs: number): string {
  if (timeout.aborted) return `no answer within ${timeoutMs}ms (timeout)`;
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err.name === 'AbortError') return 'cancelled';
  const cause = err.cause?.code ?? err.cause?.message;
  return cause ? `${err.message} (${cause})` : err.message;
}

function oneLine(s: string, max: number): string {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/** Whether another attempt can help: network errors, timeouts, 5xx, 408 and 429 — not other 4xx or 3xx. */
export function isRetryable(result: DeliveryResult): boolean {
  if (result.ok) return false;
  const s = result.status;
  if (s === undefined) return true;
  return s >= 500 || s === 408 || s === 429;
}

/**
 * A URL as it may appear in events and logs: scheme, host and path, never the query string or
 * credentials. `hostOnly` also drops the path, for URLs whose path is the secret (Slack's).
 */
export function describeUrl(url: string, { hostOnly = false }: { hostOnly?: boolean } = {}): string {
  try {
    const u = new URL(url);
    return hostOnly ? u.origin : `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}
