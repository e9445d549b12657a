import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  hubSignature,
  slackSignature,
  verifyHubSignature,
  verifySlackSignature,
} from '../../src/api/hooks/signatures.ts';

// GitHub's documented example (validating webhook deliveries).
const GITHUB = {
  secret: "It's a Secret to Everybody",
  payload: 'Hello, World!',
  signature: 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17',
};

// Slack's documented example (verifying requests from Slack).
const SLACK = {
  secret: '8f742231b10e8888abcd99yyyzzz85a5',
  timestamp: '1531420618',
  body: 'token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c',
  signature: 'v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503',
};

const hmac = (secret: string, data: string) => createHmac('sha256', secret).update(data).digest('hex');

describe('X-Hub-Signature-256', () => {
  it("accepts GitHub's documented example and computes the same signature", () => {
    expect(hubSignature(GITHUB.secret, GITHUB.payload)).toBe(GITHUB.signature);
    expect(verifyHubSignature(GITHUB.secret, Buffer.from(GITHUB.payload), GITHUB.signature)).toEqual({
      ok: true,
    });
    // Upper-case hex is the same digest.
    expect(
      verifyHubSignature(
        GITHUB.secret,
        Buffer.from(GITHUB.payload),
        GITHUB.signature.toUpperCase().replace('SHA256', 'sha256'),
      ),
    ).toEqual({ ok: true });
  });

  it('refuses a changed body, a wrong secret, a missing or malformed header, a truncated digest', () => {
    const body = Buffer.from(GITHUB.payload);
    expect(verifyHubSignature(GITHUB.secret, Buffer.from('Hello, World?'), GITHUB.signature).ok).toBe(false);
    expect(verifyHubSignature('another secret', body, GITHUB.signature).ok).toBe(false);
    expect(verifyHubSignature(GITHUB.secret, body, undefined)).toEqual({
      ok: false,
      reason: 'missing X-Hub-Signature-256 header',
    });
    expect(verifyHubSignature(GITHUB.secret, body, 'sha1=abc').ok).toBe(false);
    expect(verifyHubSignature(GITHUB.secret, body, GITHUB.signature.slice(0, -2)).ok).toBe(false);
    expect(verifyHubSignature(GITHUB.secret, body, `${GITHUB.signature}00`).ok).toBe(false);
  });

  it('agrees with node:crypto on arbitrary bodies and secrets (raw bytes)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.uint8Array(), (secret, bytes) => {
        const body = Buffer.from(bytes);
        const sig = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
        expect(verifyHubSignature(secret, body, sig)).toEqual({ ok: true });
        if (body.length > 0) {
          const flipped = Buffer.from(body);
          flipped[0] = flipped[0]! ^ 1;
          expect(verifyHubSignature(secret, flipped, sig).ok).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('X-Slack-Signature', () => {
  const at = (ts: string) => Number(ts) * 1000;

  it("computes Slack's documented signature, accepts it at its own time and refuses it today as a replay", () => {
    expect(slackSignature(SLACK.secret, SLACK.timestamp, SLACK.body)).toBe(SLACK.signature);
    expect(`v0=${hmac(SLACK.secret, `v0:${SLACK.timestamp}:${SLACK.body}`)}`).toBe(SLACK.signature);
    const headers = { timestamp: SLACK.timestamp, signature: SLACK.signature };
    expect(
      verifySlackSignature(SLACK.secret, Buffer.from(SLACK.body), headers, at(SLACK.timestamp) + 60_000),
    ).toEqual({
      ok: true,
    });
    const today = verifySlackSignature(SLACK.secret, Buffer.from(SLACK.body), headers, Date.now());
    expect(today.ok).toBe(false);
    expect(!today.ok && today.reason).toMatch(/stale or replayed/);
  });

  it('refuses outside five minutes either way, a wrong signature, missing headers', () => {
    const body = Buffer.from('text=list&user_id=U1');
    const now = 1_800_000_000_000;
    const ts = String(now / 1000);
    const sig = `v0=${hmac('s3cret-s3cret', `v0:${ts}:${body}`)}`;
    const check = (t: string, s: string | undefined, clock = now) =>
      verifySlackSignature('s3cret-s3cret', body, { timestamp: t, signature: s }, clock);
    expect(check(ts, sig)).toEqual({ ok: true });
    expect(check(ts, sig, now + 299_000).ok).toBe(true);
    expect(check(ts, sig, now + 301_000).ok).toBe(false);
    expect(check(ts, sig, now - 301_000).ok).toBe(false);
    expect(check(ts, `v0=${hmac('other', `v0:${ts}:${body}`)}`).ok).toBe(false);
    // The timestamp is part of what is signed: a fresh timestamp on an old signature fails.
    expect(check(String(now / 1000 + 1), sig).ok).toBe(false);
    expect(check(ts, undefined)).toEqual({ ok: false, reason: 'missing X-Slack-Signature header' });
    expect(check('', sig)).toEqual({ ok: false, reason: 'missing X-Slack-Request-Timestamp header' });
    expect(check('12e3', sig).ok).toBe(false);
  });
});
