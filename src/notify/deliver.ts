import { randomUUID } from 'node:crypto';
import { fetch as undiciFetch } from 'undici';
import { HEADERS, signedHeaders } from './signing.ts';
import { type OutboundGuard, outboundGuard, redactCredentials } from './url-guard.ts';

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
  /** The outbound URL guard (checked before connecting and on every resolved address). Default the process-wide one. */
  guard?: OutboundGuard;
}

export interface DeliveryResult {
  /** A 2xx answer. */
  ok: boolean;
  status?: number;
  /** Why it failed: a network error, a timeout, a refused address, or the status with the answer's reason. */
  error?: string;
  /**
   * The `reason` (or `message`) field of a JSON answer, at most 200 characters, e.g. a gate's
   * explanation. Never the raw body: an answer must not carry an internal page into events.
   */
  response?: string;
  ms: number;
}

const REASON_CHARS = 200;
/** How much of an answer is read to find its reason; the rest is discarded unread. */
const ANSWER_BYTES = 16 * 1024;

/** Reads at most `max` bytes of a body, then cancels the rest. */
async function readCapped(body: ReadableStream<Uint8Array> | null, max: number): Promise<string> {
  if (!body) return '';
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < max) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return Buffer.concat(chunks).subarray(0, max).toString('utf8');
}

/** The `reason` or `message` string of a JSON answer, flattened to one line of at most 200 characters. */
export function answerReason(text: string): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return undefined;
  const d = doc as Record<string, unknown>;
  const said =
    typeof d.reason === 'string' ? d.reason : typeof d.message === 'string' ? d.message : undefined;
  return said === undefined ? undefined : oneLine(redactCredentials(said), REASON_CHARS) || undefined;
}

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
  const guard = opts.guard ?? outboundGuard();
  const refused = guard.refused(target.url);
  if (refused) return { ok: false, error: `refused: ${refused}`, ms: ms() };
  // fetch refuses a URL with credentials: they travel as basic auth instead, and never into text.
  const url = new URL(target.url);
  if (url.username || url.password) {
    const user = decodeURIComponent(url.username);
    const pass = decodeURIComponent(url.password);
    (headers as Record<string, string>).authorization =
      `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    url.username = '';
    url.password = '';
  }
  try {
    const res = await undiciFetch(url, {
      method: 'POST',
      headers,
      body,
      signal,
      redirect: 'manual',
      dispatcher: guard.dispatcher,
    });
    const reason = answerReason(
      await readCapped(res.body as ReadableStream<Uint8Array> | null, ANSWER_BYTES),
    );
    const ok = res.status >= 200 && res.status < 300;
    const redirect =
      res.status >= 300 && res.status < 400 ? ' (a redirect; vane does not follow redirects)' : '';
    return {
      ok,
      status: res.status,
      ...(reason ? { response: reason } : {}),
      ...(ok ? {} : { error: `answered ${res.status}${redirect}${reason ? `: ${reason}` : ''}` }),
      ms: ms(),
    };
  } catch (e) {
    return { ok: false, error: redactCredentials(networkError(e, timeout, opts.timeoutMs)), ms: ms() };
  }
}

function networkError(e: unknown, timeout: AbortSignal, timeoutMs: number): string {
  if (timeout.aborted) return `no answer within ${timeoutMs}ms (timeout)`;
  const err = e as Error & { cause?: { code?: string; message?: string; name?: string } };
  if (err.name === 'AbortError') return 'cancelled';
  if (err.cause?.name === 'RefusedAddressError') return `refused: ${err.cause.message}`;
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
