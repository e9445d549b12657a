import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Pure checks of inbound signatures over the raw bytes of a request: GitHub's
 * `X-Hub-Signature-256` and Slack's `X-Slack-Signature`. Every comparison is in constant time over
 * equal-length digests, so neither the length nor a prefix of the expected value leaks.
 */

export type Verified = { ok: true } | { ok: false; reason: string };

/** How far a signed timestamp may be from now before the request is a replay. */
export const REPLAY_WINDOW_SECONDS = 300;

function hmacHex(secret: string, data: Buffer | string): Buffer {
  return Buffer.from(createHmac('sha256', secret).update(data).digest('hex'));
}

/** Compares a claimed lowercase-hex digest with the expected one; a claim of another length is hashed first so timing is the same. */
function sameDigest(expected: Buffer, claimed: string): boolean {
  const given = Buffer.from(claimed.toLowerCase());
  if (given.length !== expected.length) {
    timingSafeEqual(expected, expected);
    return false;
  }
  return timingSafeEqual(expected, given);
}

/** `sha256=<hex>` as GitHub sends it for `body` signed with `secret`. */
export function hubSignature(secret: string, body: Buffer | string): string {
  return `sha256=${hmacHex(secret, body).toString()}`;
}

/** Checks `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`. */
export function verifyHubSignature(secret: string, body: Buffer, header: string | undefined): Verified {
  if (!header) return { ok: false, reason: 'missing X-Hub-Signature-256 header' };
  const m = /^sha256=([0-9a-fA-F]{1,128})$/.exec(header.trim());
  if (!m) return { ok: false, reason: 'X-Hub-Signature-256 must be sha256=<hex HMAC-SHA256 of the body>' };
  return sameDigest(hmacHex(secret, body), m[1]!)
    ? { ok: true }
    : { ok: false, reason: 'X-Hub-Signature-256 does not match the body' };
}

/** `v0=<hex>` as Slack sends it: HMAC-SHA256 of `v0:<timestamp>:<body>`. */
export function slackSignature(secret: string, timestamp: string, body: Buffer | string): string {
  const base = Buffer.concat([Buffer.from(`v0:${timestamp}:`), Buffer.from(body)]);
  return `v0=${hmacHex(secret, base).toString()}`;
}

/**
 * Checks Slack's request signature: `X-Slack-Request-Timestamp` within five minutes of `nowMs`
 * (otherwise a replay), and `X-Slack-Signature: v0=<hex HMAC-SHA256 of v0:timestamp:body>`.
 */
export function verifySlackSignature(
  secret: string,
  body: Buffer,
  headers: { timestamp: string | undefined; signature: string | undefined },
  nowMs: number,
): Verified {
  const { timestamp, signature } = headers;
  if (!timestamp) return { ok: false, reason: 'missing X-Slack-Request-Timestamp header' };
  if (!signature) return { ok: false, reason: 'missing X-Slack-Signature header' };
  if (!/^\d{1,12}$/.test(timestamp))
    return { ok: false, reason: 'X-Slack-Request-Timestamp must be unix seconds' };
  const age = Math.abs(nowMs / 1000 - Number(timestamp));
  if (age > REPLAY_WINDOW_SECONDS) {
    return {
      ok: false,
      reason: `X-Slack-Request-Timestamp is ${Math.round(age)}s from now (allowed ${REPLAY_WINDOW_SECONDS}s): stale or replayed`,
    };
  }
  const m = /^v0=([0-9a-fA-F]{1,128})$/.exec(signature.trim());
  if (!m) return { ok: false, reason: 'X-Slack-Signature must be v0=<hex>' };
  const base = Buffer.concat([Buffer.from(`v0:${timestamp}:`), body]);
  return sameDigest(hmacHex(secret, base), m[1]!)
    ? { ok: true }
    : { ok: false, reason: 'X-Slack-Signature does not match the body' };
}
