import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildPayload } from '../../src/notify/payload.ts';
import { planDeliveries } from '../../src/notify/plan.ts';
import { sign, verify } from '../../src/notify/signing.ts';
import {
  severityOf,
  shouldNotify,
  slackMessage,
  summarize,
  validateSlackMessage,
} from '../../src/notify/slack.ts';
import type { RolloutEvent } from '../../src/rollouts/model.ts';
import { makeRollout } from './fixtures.ts';

const T = Date.UTC(2026, 0, 2, 3, 4, 5);
const rolledBack: RolloutEvent = {
  time: T,
  type: 'transition',
  from: 'rolling-back',
  to: 'failed',
  reason: 'analysis failed (2 of 2): success-rate 91.2% < 99% (stable 99.9%)',
  weights: { stable: 100, canary: 0 },
};

describe('payload', () => {
  it('carries what a receiver needs, with Flagger-compatible top-level fields', () => {
    const r = makeRollout();
    const event: RolloutEvent = {
      time: T,
      type: 'weight',
      reason: 'step 3 of 4: canary 25%',
      weights: r.weights,
    };
    const p = buildPayload(r, 'rollout', { event, metadata: { test: 'load' }, now: T });
    expect(p).toMatchObject({
      id: r.id,
      type: 'rollout',
      name: 'reviews',
      namespace: 'bookinfo',
      phase: 'progressing',
      target: {
        namespace: 'bookinfo',
        virtualService: 'reviews',
        destinationRule: 'reviews',
        host: 'reviews',
      },
      stable: { subset: 'v1' },
      canary: { subset: 'v2', labels: { version: 'v2' } },
      weights: { stable: 75, canary: 25 },
      step: { index: 2, count: 4 },
      metadata: {
        commit: 'abc1234',
        pipelineUrl: 'https://ci.example/p/42',
        triggeredBy: 'ci-bot',
        test: 'load',
      },
      event: { type: 'weight', reason: 'step 3 of 4: canary 25%', time: '2026-01-02T03:04:05.000Z' },
      gate: null,
      timestamp: '2026-01-02T03:04:05.000Z',
    });
    expect(p.analysis?.results[0]).toEqual({
      name: 'success-rate',
      verdict: 'fail',
      critical: true,
      value: 91.2,
      stableValue: 99.9,
      thresholds: { min: 99 },
      message: 'success-rate 91.2% < 99% (stable 99.9%)',
    });
    expect(p.analysis).toMatchObject({ verdict: 'fail', failures: 2, failureThreshold: 2 });
    // It survives JSON as it is.
    expect(JSON.parse(JSON.stringify(p))).toEqual(p);
  });

  it('has no analysis before the first one and names the gate asked', () => {
    const p = buildPayload(makeRollout({}, { lastAnalysis: undefined }), 'confirm-promotion', {
      gate: 'confirm-promotion',
    });
    expect(p.analysis).toBeNull();
    expect(p.gate).toBe('confirm-promotion');
    expect(p.event).toBeNull();
  });
});

describe('signing', () => {
  const secret = 's3cret';
  const body = '{"a":1}';
  const now = 1_800_000_000_000;
  const ts = now / 1000;

  it('is HMAC-SHA256 over "timestamp.body", hex, as v1=', () => {
    const independent = createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex');
    expect(sign(secret, ts, body)).toBe(`v1=${independent}`);
  });

  it('verifies a fresh delivery and refuses tampering, a wrong secret and a stale timestamp', () => {
    const headers = { 'x-vane-timestamp': String(ts), 'x-vane-signature': sign(secret, ts, body) };
    expect(verify(secret, headers, body, { now })).toEqual({ ok: true, timestamp: ts });
    expect(verify(secret, new Headers(headers), body, { now }).ok).toBe(true);
    expect(verify(secret, headers, '{"a":2}', { now })).toMatchObject({
      ok: false,
      reason: 'signature does not match',
    });
    expect(verify('other', headers, body, { now }).ok).toBe(false);
    // The same request captured and replayed ten minutes later.
    const replay = verify(secret, headers, body, { now: now + 600_000 });
    expect(replay.ok).toBe(false);
    expect(!replay.ok && replay.reason).toMatch(/stale or replayed/);
    expect(verify(secret, headers, body, { now: now + 600_000, toleranceSeconds: 900 }).ok).toBe(true);
    // A signature moved to another timestamp does not verify.
    const moved = { ...headers, 'x-vane-timestamp': String(ts + 1) };
    expect(verify(secret, moved, body, { now }).ok).toBe(false);
    expect(verify(secret, { 'x-vane-timestamp': String(ts) }, body, { now })).toMatchObject({ ok: false });
  });

  it('accepts any of several signatures (secret rotation)', () => {
    const headers = {
      'X-Vane-Timestamp': String(ts),
      'X-Vane-Signature': `${sign('old', ts, body)}, ${sign(secret, ts, body)}`,
    };
    expect(verify(secret, headers, body, { now }).ok).toBe(true);
  });
});

describe('summaries and severity', () => {
  it('says what happened and why, with values, weights and counts', () => {
    const r = makeRollout({}, { phase: 'failed', weights: { stable: 100, canary: 0 } });
    expect(summarize(r, rolledBack)).toBe(
      'bookinfo/reviews v2 rolled back at 25%: success-rate 91.2% < 99% (stable 99.9%), 2 of 2 analyses failed',
    );
    const aborted: RolloutEvent = {
      time: T,
      type: 'transition',
      from: 'rolling-back',
      to: 'aborted',
      reason: 'aborted by alice: bad build',
    };
    // An operator's abort is not blamed on the (failing) last analysis.
    expect(summarize(r, aborted)).toBe('bookinfo/reviews v2 aborted at 25% by alice: bad build');
    expect(summarize(r, { ...aborted, from: 'progressing', to: 'rolling-back' })).toBe(
      'bookinfo/reviews v2 rolling back at 25%, aborted by alice: bad build',
    );
    const driftAbort: RolloutEvent = {
      ...rolledBack,
      reason: 'drift: managed weights are stable 50 / canary 50',
    };
    expect(summarize(r, driftAbort)).toBe(
      'bookinfo/reviews v2 rolled back at 25%: drift: managed weights are stable 50 / canary 50',
    );
    const critical: RolloutEvent = {
      time: T,
      type: 'transition',
      from: 'progressing',
      to: 'rolling-back',
      reason: 'a critical check failed: success-rate 91.2% < 99% (stable 99.9%)',
      results: r.lastAnalysis?.results ?? [],
    };
    expect(summarize(makeRollout({}, { progress: { ...r.progress, failures: 0 } }), critical)).toBe(
      'bookinfo/reviews v2 rolling back at 25%: success-rate 91.2% < 99% (stable 99.9%), a critical check failed',
    );
    const ok: RolloutEvent = {
      time: T,
      type: 'transition',
      from: 'promoting',
      to: 'succeeded',
      reason: 'promoted',
    };
    expect(summarize(r, ok)).toBe('bookinfo/reviews v2 promoted: promoted');
    const drift: RolloutEvent = {
      time: T,
      type: 'drift',
      reason: 'managed weights are stable 50 / canary 50 (policy: pause)',
    };
    expect(summarize(r, drift)).toContain('drift detected: managed weights are stable 50');
  });

  it('maps events to severities', () => {
    expect(severityOf(rolledBack)).toBe('error');
    expect(severityOf({ ...rolledBack, to: 'succeeded' })).toBe('info');
    expect(severityOf({ ...rolledBack, to: 'aborted' })).toBe('warn');
    expect(
      severityOf({ ...rolledBack, from: 'progressing', to: 'rolling-back', reason: 'abort by alice' }),
    ).toBe('warn');
    expect(
      severityOf({
        ...rolledBack,
        from: 'progressing',
        to: 'rolling-back',
        reason: 'a critical check failed',
      }),
    ).toBe('error');
    expect(severityOf({ time: T, type: 'drift', reason: 'x' })).toBe('warn');
    expect(severityOf({ time: T, type: 'analysis', reason: 'x', verdict: 'fail' })).toBe('warn');
    expect(severityOf({ time: T, type: 'weight', reason: 'x' })).toBe('info');
  });

  it('filters by minimum severity and by event type or phase entered', () => {
    const weight: RolloutEvent = { time: T, type: 'weight', reason: 'step' };
    expect(shouldNotify({ severity: 'info' }, weight)).toBe(true);
    expect(shouldNotify({ severity: 'warn' }, weight)).toBe(false);
    expect(shouldNotify({ severity: 'warn' }, rolledBack)).toBe(true);
    expect(shouldNotify({ severity: 'error' }, { time: T, type: 'drift', reason: 'x' })).toBe(false);
    expect(shouldNotify({ severity: 'info', events: ['failed', 'succeeded'] }, rolledBack)).toBe(true);
    expect(shouldNotify({ severity: 'info', events: ['failed'] }, weight)).toBe(false);
    expect(shouldNotify({ severity: 'info', events: ['weight'] }, weight)).toBe(true);
    expect(shouldNotify({ severity: 'info' }, { time: T, type: 'notification', reason: 'sent' })).toBe(false);
  });
});

describe('Slack incoming-webhook payloads', () => {
  it('have the fallback text and section/context blocks of mrkdwn text objects', () => {
    const r = makeRollout({}, { phase: 'failed', weights: { stable: 100, canary: 0 } });
    const msg = slackMessage(r, rolledBack);
    expect(validateSlackMessage(msg)).toEqual([]);
    expect(msg.text).toBe(summarize(r, rolledBack));
    expect(msg.blocks?.map((b) => b.type)).toEqual(['section', 'section', 'context']);
    const first = msg.blocks?.[0];
    expect(first?.type === 'section' && first.text?.type).toBe('mrkdwn');
    expect(JSON.stringify(msg)).toContain('<https://ci.example/p/42|pipeline>');
  });

  it('escape what users wrote and stay within Slack limits', () => {
    const r = makeRollout({ metadata: { triggeredBy: '<!channel> & co' } });
    const msg = slackMessage(r, { time: T, type: 'error', reason: 'x'.repeat(5000) });
    expect(validateSlackMessage(msg)).toEqual([]);
    expect(JSON.stringify(msg)).toContain('&lt;!channel&gt; &amp; co');
    expect(JSON.stringify(msg)).not.toContain('<!channel>');
  });

  it('the validator refuses what Slack refuses', () => {
    expect(validateSlackMessage({ blocks: [] })[0]).toMatch(/^text: required/);
    expect(validateSlackMessage({ text: 'x', blocks: [{ type: 'section' }] })).toEqual([
      'blocks[0]: needs text or fields',
    ]);
    expect(
      validateSlackMessage({
        text: 'x',
        blocks: [{ type: 'section', text: { type: 'markdown', text: 'a' } }],
      })[0],
    ).toMatch(/blocks\[0\]\.text\.type: must be mrkdwn or plain_text/);
    expect(validateSlackMessage({ text: 'x', blocks: [{ type: 'context', elements: [] }] })[0]).toMatch(
      /1 to 10 elements/,
    );
    expect(
      validateSlackMessage({
        text: 'x',
        blocks: [{ type: 'section', text: { type: 'mrkdwn', text: 'a'.repeat(3001) } }],
      })[0],
    ).toMatch(/at most 3000/);
  });
});

describe('planDeliveries', () => {
  const spec = {
    webhooks: [
      {
        type: 'event' as const,
        name: 'audit',
        url: 'https://audit.example/hook?token=abc',
        secretEnv: 'VANE_SECRET_AUDIT',
      },
      { type: 'rollout' as const, url: 'https://load.example/start', metadata: { cmd: 'hey -z 1m' } },
      { type: 'post-rollout' as const, url: 'https://ci.example/done' },
      { type: 'confirm-promotion' as const, url: 'https://gate.example/check' },
    ],
    notifications: [
      {
        type: 'slack' as const,
        url: 'https://hooks.slack.example/services/T0/B0/SECRETPATH',
        severity: 'warn' as const,
      },
      { type: 'webhook' as const, url: 'https://chat.example/in', events: ['succeeded', 'failed'] },
    ],
  };

  it('plans event webhooks for every event, rollout webhooks on weights, post-rollout at the end, filtered notifications', () => {
    const r = makeRollout(spec, { phase: 'failed' });
    const events: RolloutEvent[] = [
      { time: T, type: 'weight', reason: 'rolled back to stable', weights: { stable: 100, canary: 0 } },
      rolledBack,
    ];
    const jobs = planDeliveries(r, events, { now: T });
    expect(jobs.map((j) => `${j.id} ${j.type} ${j.channel}`)).toEqual([
      `n-${r.id}-v7.0-w0 event webhook`,
      `n-${r.id}-v7.0-w1 rollout webhook`,
      `n-${r.id}-v7.1-w0 event webhook`,
      `n-${r.id}-v7.1-w2 post-rollout webhook`,
      `n-${r.id}-v7.1-n0 notification slack`,
      `n-${r.id}-v7.1-n1 notification json`,
    ]);
    for (const j of jobs) expect(j.id).not.toContain(':');
    // Deterministic: the same events plan the same ids.
    expect(planDeliveries(r, events).map((j) => j.id)).toEqual(jobs.map((j) => j.id));
    // The secret's name travels, never a secret; labels hide query strings and Slack's secret path.
    expect(jobs[0]).toMatchObject({
      secretEnv: 'VANE_SECRET_AUDIT',
      label: "event webhook 'audit' to https://audit.example/hook",
    });
    expect(jobs[4]?.label).toBe('slack notification to https://hooks.slack.example');
    expect(jobs[1]?.body).toMatchObject({ metadata: { cmd: 'hey -z 1m' }, type: 'rollout' });
    expect(validateSlackMessage(jobs[4]?.body)).toEqual([]);
    expect(jobs[5]?.body).toMatchObject({
      severity: 'error',
      summary: summarize(r, rolledBack),
      type: 'notification',
    });
  });

  it('uses stream ids when events carry them, and never plans for notification events', () => {
    const r = makeRollout(spec);
    const jobs = planDeliveries(r, [
      { ...rolledBack, id: '1767323045000-3' },
      { time: T, type: 'notification', reason: 'sent' },
    ]);
    expect(jobs[0]?.id).toBe(`n-${r.id}-1767323045000.3-w0`);
    expect(jobs.every((j) => j.id.includes('1767323045000.3'))).toBe(true);
  });
});
