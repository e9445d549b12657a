import { describe, expect, it } from 'vitest';
import type { MetricResult } from '../../src/metrics/types.ts';
import { buildPayload } from '../../src/notify/payload.ts';
import { slackMessage, summarize, validateSlackMessage } from '../../src/notify/slack.ts';
import type { RolloutEvent } from '../../src/rollouts/model.ts';
import { makeRollout } from './fixtures.ts';

const T = Date.UTC(2026, 0, 5, 14, 5);
const results: MetricResult[] = [
  { name: 'success-rate', verdict: 'pass', critical: true, value: 99.9, message: 'success rate 99.9% ≥ 99%' },
  {
    name: 'p99-latency',
    verdict: 'fail',
    critical: false,
    dryRun: true,
    value: 812,
    message: 'p99 latency 812ms > 500ms',
  },
];

describe('dry-run checks in notifications', () => {
  const r = makeRollout({}, { lastAnalysis: { verdict: 'pass', results, at: T } });
  const passed: RolloutEvent = {
    time: T,
    type: 'analysis',
    reason: 'analysis: pass',
    verdict: 'pass',
    results,
  };

  it('a passing analysis says which dry-run checks failed, marked as not counted', () => {
    expect(summarize(r, passed)).toBe(
      'bookinfo/reviews v2 analysis: pass; dry run, not counted: p99 latency 812ms > 500ms',
    );
  });

  it('the Slack message lists the dry-run check marked "dry run" and stays valid', () => {
    const msg = slackMessage(r, passed);
    expect(validateSlackMessage(msg)).toEqual([]);
    expect(JSON.stringify(msg.blocks)).toContain('p99 latency 812ms &gt; 500ms (dry run)');
  });

  it('a failed analysis is never blamed on a dry-run check', () => {
    const failed: RolloutEvent = {
      ...passed,
      reason: 'analysis: fail',
      verdict: 'fail',
      results: [{ ...results[0]!, verdict: 'fail', message: 'success rate 91% < 99%' }, results[1]!],
    };
    expect(summarize(r, failed)).toBe(
      'bookinfo/reviews v2 analysis failed at 25%: success rate 91% < 99% (1 of 1 checks failed); dry run, not counted: p99 latency 812ms > 500ms',
    );
  });

  it('webhook payloads carry dryRun on the dry-run checks only', () => {
    const p = buildPayload(r, 'event', { event: passed, now: T });
    const metrics = p.analysis?.results ?? [];
    expect(metrics.map((m) => [m.name, m.dryRun ?? false])).toEqual([
      ['success-rate', false],
      ['p99-latency', true],
    ]);
  });
});
