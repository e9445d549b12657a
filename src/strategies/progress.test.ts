import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { analysisNeed, decide, initialProgress, stagesOf, type Timing, type Verdict } from './index.ts';

const timing: Timing = {
  stepIntervalMs: 30_000,
  guardIntervalMs: 5_000,
  failureThreshold: 2,
  inconclusiveDeadlineMs: 120_000,
  promotionGate: false,
  gateDeadlineMs: 3_600_000,
};

describe('canary stages', () => {
  it('uses explicit steps, or stepWeight up to maxWeight', () => {
    expect(stagesOf({ type: 'canary', steps: [5, 10, 25, 50] }).map((s) => s.traffic.canaryWeight)).toEqual([
      5, 10, 25, 50,
    ]);
    expect(
      stagesOf({ type: 'canary', stepWeight: 20, maxWeight: 50 }).map((s) => s.traffic.canaryWeight),
    ).toEqual([20, 40, 50]);
    expect(
      stagesOf({ type: 'canary', stepWeight: 25, maxWeight: 100 }).map((s) => s.traffic.canaryWeight),
    ).toEqual([25, 50, 75, 100]);
  });
  it('blue-green previews with mirrored traffic and A/B with matches, both at 0% of live traffic', () => {
    expect(stagesOf({ type: 'blue-green' })[0]!.traffic).toEqual({ canaryWeight: 0, mirrorPercent: 100 });
    const match = [{ headers: { 'x-canary': { exact: 'yes' } } }];
    expect(stagesOf({ type: 'ab-test', match, iterations: 3 })).toEqual([
      { traffic: { canaryWeight: 0, match }, analyses: 3 },
    ]);
  });
});

describe('decide', () => {
  const stages = stagesOf({ type: 'canary', steps: [5, 10, 25, 50] });

  it('walks every step on passing analyses, then promotes', () => {
    let now = 0;
    let p = initialProgress(now);
    const weights: number[] = [];
    for (let i = 0; i < 100; i++) {
      const need = analysisNeed(p, timing, now);
      const d = decide(stages, timing, p, need === 'full' ? { analysis: 'pass' } : {}, now, 'progressing', 0);
      if (d.type === 'promote') break;
      if (d.type === 'stage') weights.push(d.traffic.canaryWeight);
      p = d.progress;
      now += 5_000;
    }
    expect(weights).toEqual([5, 10, 25, 50]);
  });

  it('never promotes without data and rolls back after the inconclusive deadline', () => {
    let now = 0;
    let p = decide(stages, timing, initialProgress(0), {}, 0, 'progressing', 0).progress;
    for (;;) {
      now += 5_000;
      const need = analysisNeed(p, timing, now);
      const d = decide(
        stages,
        timing,
        p,
        need === 'full' ? { analysis: 'inconclusive' } : {},
        now,
        'progressing',
        0,
      );
      expect(d.type === 'stage' || d.type === 'promote').toBe(false);
      if (d.type === 'rollback') {
        expect(d.reason).toMatch(/inconclusive/);
        expect(now).toBeGreaterThanOrEqual(timing.stepIntervalMs + timing.inconclusiveDeadlineMs);
        break;
      }
      p = d.progress;
    }
  });

  it('holds at a manual gate until the pause duration elapses', () => {
    const gated = stagesOf({
      type: 'canary',
      steps: [10, { weight: 20, pause: { duration: 60_000 } }, 50],
    });
    const p = { ...initialProgress(0), stageIndex: 1, stageStartedAt: 1_000 };
    expect(decide(gated, timing, p, {}, 30_000, 'progressing', 0)).toMatchObject({
      type: 'pause',
      until: 61_000,
    });
    expect(decide(gated, timing, p, {}, 61_000, 'progressing', 0)).toMatchObject({
      type: 'wait',
      progress: { gatePassed: true },
    });
  });

  it('property: a step is never skipped, a failed guard always rolls back, and promotion needs a pass at every step', () => {
    const verdict = fc.constantFrom<Verdict | undefined>('pass', 'fail', 'inconclusive', undefined);
    fc.assert(
      fc.property(
        fc.array(fc.record({ guard: verdict, analysis: verdict, dt: fc.integer({ min: 1, max: 40_000 }) }), {
          maxLength: 80,
        }),
        fc.integer({ min: 1, max: 4 }),
        (ticks, failureThreshold) => {
          const t = { ...timing, failureThreshold };
          let now = 0;
          let p = initialProgress(0);
          let passesSeen = new Set<number>();
          let consecutiveFailures = 0;
          for (const tick of ticks) {
            now += tick.dt;
            const obs = { guard: tick.guard, analysis: tick.analysis };
            const d = decide(stages, t, p, obs, now, 'progressing', 0);
            if (p.stageIndex >= 0 && tick.guard === 'fail') expect(d.type).toBe('rollback');
            if (tick.analysis === 'fail' && p.stageIndex >= 0 && tick.guard !== 'fail') {
              consecutiveFailures++;
              if (consecutiveFailures >= failureThreshold) expect(d.type).toBe('rollback');
            } else if (tick.analysis === 'pass') consecutiveFailures = 0;
            if (tick.analysis === 'pass' && p.stageIndex >= 0 && tick.guard !== 'fail')
              passesSeen.add(p.stageIndex);
            if (d.type === 'stage') {
              expect(d.stageIndex).toBe(p.stageIndex + 1);
              if (d.stageIndex > 0) expect(passesSeen.has(d.stageIndex - 1)).toBe(true);
            }
            if (d.type === 'promote') {
              expect(p.stageIndex).toBe(stages.length - 1);
              expect(passesSeen.has(stages.length - 1)).toBe(true);
            }
            if (d.type === 'rollback' || d.type === 'promote') return;
            if (d.type === 'stage') passesSeen = new Set([...passesSeen].filter((i) => i < d.stageIndex));
            p = d.progress;
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('guard scheduling', () => {
  it('schedules each guard check from when it was due, so lateness never adds up', () => {
    const stages = stagesOf({ type: 'canary', steps: [5, 10, 25, 50] });
    const t = { ...timing, stepIntervalMs: 3_600_000 };
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 4_999 }), { minLength: 5, maxLength: 60 }), (lates) => {
        const start = 1_000_000;
        let p = decide(stages, t, initialProgress(start), {}, start, 'progressing', start).progress;
        let due = start + t.guardIntervalMs;
        for (const late of lates) {
          const now = due + late;
          expect(analysisNeed(p, t, now)).toBe('critical');
          const d = decide(stages, t, p, { guard: 'pass' }, now, 'progressing', start);
          expect(d.type).toBe('wait');
          if (d.type !== 'wait') return;
          // the next check is due one interval after this one was due, whatever this one's lateness
          expect(d.at).toBe(due + t.guardIntervalMs);
          p = d.progress;
          due = d.at;
        }
      }),
      { numRuns: 200 },
    );
  });

  it('a rollout more than an interval behind skips the missed checks instead of running them back to back', () => {
    const stages = stagesOf({ type: 'canary', steps: [5, 10] });
    const t = { ...timing, stepIntervalMs: 3_600_000 };
    const p = decide(stages, t, initialProgress(0), {}, 0, 'progressing', 0).progress;
    const d = decide(stages, t, p, { guard: 'pass' }, 17_300, 'progressing', 0);
    expect(d.type === 'wait' && d.at).toBe(20_000);
  });
});
