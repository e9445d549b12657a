import { createHmac, timingSafeEqual } from 'node:crypto';

/** Header names of a signed delivery (documented in docs/WEBHOOKS.md). */
export const HEADERS = {
  timestamp: 'X-Vane-Timestamp',
  signature: 'X-Vane-Signature',
  delivery: 'X-Vane-Delivery',
  event: 'X-Vane-Event',
  attempt: 'X-Vane-Attempt',
} as const;

/** Version tag of the scheme: `v1` = HMAC-SHA256 over `${timestamp}.${body}`, hex. */
const SCHEME = 'v1';

/** Looks up a secret by the name of the environment variable that holds it. */
export type SecretLookup = (name: string) => string | undefined;

/** `v1=<hex>` for `body` sent at `timestamp` (unix seconds). */
export function sign(secret: string, timestamp: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return `${SCHEME}=${mac}`;
}

/** The headers that carry a signature (plus the delivery's id and event type). */
export function signedHeaders(opts: {
  secret?: string;
  body: string;
  event: string;
  deliveryId: string;
  /** Unix seconds. Default now. */
  timestamp?: number;
}): Record<string, string> {
  const ts = opts.timestamp ?? Math.floor(Date.now() / 1000);
  return {
    [HEADERS.timestamp]: String(ts),
    [HEADERS.delivery]: opts.deliveryId,
    [HEADERS.event]: opts.event,
    ...(opts.secret ? { [HEADERS.signature]: sign(opts.secret, ts, opts.body) } : {}),
  };
}

export interface VerifyOptions {
  /** How far the timestamp may be from now, in seconds, before the delivery is refused as a replay. Default 300. */
  toleranceSeconds?: number;
  /** Clock (ms since epoch). Default Date.now(). */
  now?: number;
}

export type VerifyResult = { ok: true; timestamp: number } | { ok: false; reason: string };

type HeaderBag = Headers | Record<string, string | string[] | undefined>;

function header(headers: HeaderBag, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined;
  const bag = headers as Record<string, string | string[] | undefined>;
  const key = Object.keys(bag).find((k) => k.toLowerCase() === name.toLowerCase());
  const v = key === undefined ? undefined : bag[key];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Checks a delivery the way a receiver should: the signature over `${timestamp}.${body}` matches
 * (in constant time), and the timestamp is within `toleranceSeconds` of now, so a captured request
 * replayed later is refused. Several `v1=` values separated by commas are accepted (secret rotation).
 */
export function verify(
  secret: string,
  headers: HeaderBag,
  body: string,
  { toleranceSeconds = 300, now = Date.now() }: VerifyOptions = {},
): VerifyResult {
  const tsText = header(headers, HEADERS.timestamp);
  const sigText = header(headers, HEADERS.signature);
  if (!tsText) return { ok: false, reason: `missing ${HEADERS.timestamp} header` };
  if (!sigText) return { ok: false, reason: `missing ${HEADERS.signature} header` };
  if (!/^\d{1,12}$/.test(tsText)) return { ok: false, reason: `${HEADERS.timestamp} is not unix seconds` };
  const ts = Number(tsText);
  const age = Math.abs(now / 1000 - ts);
  if (age > toleranceSeconds) {
    return {
      ok: false,
      reason: `timestamp is ${Math.round(age)}s away from now (tolerance ${toleranceSeconds}s): stale or replayed`,
    };
  }
  const expected = Buffer.from(sign(secret, ts, body));
  const candidates = sigText.split(',').map((s) => s.trim());
  const match = candidates.some((c) => {
    const given = Buffer.from(c);
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  return match ? { ok: true, timestamp: ts } : { ok: false, reason: 'signature does not match' };
}

/**
 * Memoizes a lookup so each secret is resolved once per process; the default reads vane's own
 * environment, captured when the lookup is built (never at request time).
 */
export function secretResolver(lookup: SecretLookup = envLookup(process.env)): SecretLookup {
  const cache = new Map<string, string | undefined>();
  return (name) => {
    if (!cache.has(name)) cache.set(name, lookup(name));
    return cache.get(name);
  };
}

function envLookup(env: NodeJS.ProcessEnv): SecretLookup {
  return (name) => {
    const v = env[name];
    return v === undefined || v === '' ? undefined : v;
  };
}

/** Thrown when a webhook names a secret that vane's environment does not hold. */
export class MissingSecretError extends Error {
  constructor(
    readonly secretEnv: string,
    what: string,
  ) {
    super(
      `${what}: secretEnv names environment variable ${secretEnv}, which is not set in vane's environment; set it or remove secretEnv`,
    );
    this.name = 'MissingSecretError';
  }
}

/** The secret a webhook signs with, or undefined when it has no `secretEnv`; throws MissingSecretError when the variable is unset. */
export function secretFor(
  hook: { secretEnv?: string | undefined },
  lookup: SecretLookup,
  what: string,
): string | undefined {
  if (!hook.secretEnv) return undefined;
  const s = lookup(hook.secretEnv);
  if (s === undefined) throw new MissingSecretError(hook.secretEnv, what);
  return s;
}
