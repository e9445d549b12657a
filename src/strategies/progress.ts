import type { AnalysisNeed, Decision, Observation, Progress, Stage, Timing } from './types.ts';

/** Progress before the first stage. */
export function initialProgress(now: number): Progress {
  return {
    stageIndex: -1,
    stageStartedAt: now,
    windowStartedAt: now,
    passes: 0,
    failures: 0,
    lastGuardAt: now,
    lastAnalysisAt: now,
    gatePassed: false,
  };
}

/** The next moment something is due: the end of the analysis window or the next guard check. */
export function nextDue(p: Progress, t: Timing): number {
  const fullAt = Math.max(p.windowStartedAt + t.stepIntervalMs, p.lastAnalysisAt + t.guardIntervalMs);
  return Math.min(fullAt, p.lastGuardAt + t.guardIntervalMs);
}

/**
 * The due time of the guard check that ran at `now`: the latest slot of the guard's grid
 * (last + k × interval) not after now, so the next one is due an interval after it was due, not after
 * it ran; lateness does not add up from check to check. A rollout that fell more than an interval
 * behind skips the missed slots instead of running them back to back.
 */
export function guardSlot(last: number, intervalMs: number, now: number): number {
  if (intervalMs <= 0 || now <= last) return now;
  return last + intervalMs * Math.floor((now - last) / intervalMs);
}

/** Which analysis a tick at `now` should run before calling decide(). */
export function analysisNeed(p: Progress, t: Timing, now: number): AnalysisNeed {
  if (p.stageIndex < 0) return 'none';
  if (now >= p.windowStartedAt + t.stepIntervalMs && now >= p.lastAnalysisAt + t.guardIntervalMs)
    return 'full';
  if (now >= p.lastGuardAt + t.guardIntervalMs) return 'critical';
  return 'none';
}

function enterStage(index: number, p: Progress, now: number): Progress {
  return {
    ...p,
    stageIndex: index,
    stageStartedAt: now,
    windowStartedAt: now,
    passes: 0,
    lastGuardAt: now,
    lastAnalysisAt: now,
    gatePassed: false,
    inconclusiveSince: undefined,
  };
}

/**
 * The decision of one tick of a progressing (or awaiting-promotion) rollout. Stages advance one at a
 * time, only on a passing full analysis; a failed critical check rolls back at once; failed analyses
 * roll back when they reach the threshold; inconclusive analysis never advances and rolls back after
 * its deadline.
 */
export function decide(
  stages: Stage[],
  t: Timing,
  p: Progress,
  obs: Observation,
  now: number,
  phase: 'progressing' | 'awaiting-promotion',
  phaseStartedAt: number,
): Decision {
  if (stages.length === 0) throw new Error('a strategy needs at least one stage');
  if (p.stageIndex < 0) {
    const first = stages[0]!;
    return {
      type: 'stage',
      stageIndex: 0,
      traffic: first.traffic,
      progress: enterStage(0, p, now),
      reason: 'first step',
    };
  }
  let next: Progress = { ...p };
  if (obs.guard !== undefined) next.lastGuardAt = guardSlot(p.lastGuardAt, t.guardIntervalMs, now);
  if (obs.guard === 'fail') return { type: 'rollback', progress: next, reason: 'a critical check failed' };

  const stage = stages[p.stageIndex]!;
  if (phase === 'progressing' && stage.pause && !p.gatePassed) {
    const until =
      stage.pause.durationMs === undefined ? undefined : p.stageStartedAt + stage.pause.durationMs;
    if (until === undefined || now < until) {
      return {
        type: 'pause',
        ...(until === undefined ? {} : { until }),
        progress: next,
        reason: 'manual gate at this step',
      };
    }
    next = { ...next, gatePassed: true, windowStartedAt: now, lastAnalysisAt: now };
    return { type: 'wait', at: nextDue(next, t), progress: next, reason: 'gate duration elapsed' };
  }

  if (phase === 'awaiting-promotion' && now >= phaseStartedAt + t.gateDeadlineMs) {
    return {
      type: 'rollback',
      progress: next,
      reason: `promotion gate stayed closed for ${Math.round(t.gateDeadlineMs / 1000)}s`,
    };
  }

  if (obs.analysis !== undefined) next.lastAnalysisAt = now;
  switch (obs.analysis) {
    case 'fail': {
      next = {
        ...next,
        failures: p.failures + 1,
        passes: 0,
        windowStartedAt: now,
        inconclusiveSince: undefined,
      };
      if (next.failures >= t.failureThreshold) {
        return {
          type: 'rollback',
          progress: next,
          reason: `${next.failures} of ${t.failureThreshold} allowed analyses failed`,
        };
      }
      return {
        type: 'wait',
        at: nextDue(next, t),
        progress: next,
        reason: `analysis failed (${next.failures} of ${t.failureThreshold})`,
      };
    }
    case 'inconclusive': {
      next.inconclusiveSince = p.inconclusiveSince ?? now;
      if (now - next.inconclusiveSince >= t.inconclusiveDeadlineMs) {
        return {
          type: 'rollback',
          progress: next,
          reason: `analysis stayed inconclusive for ${Math.round((now - next.inconclusiveSince) / 1000)}s`,
        };
      }
      return {
        type: 'wait',
        at: nextDue(next, t),
        progress: next,
        reason: 'analysis inconclusive: waiting for data',
      };
    }
    case 'pass': {
      next = {
        ...next,
        failures: 0,
        passes: p.passes + 1,
        windowStartedAt: now,
        inconclusiveSince: undefined,
      };
      if (phase === 'awaiting-promotion') {
        return {
          type: 'wait',
          at: nextDue(next, t),
          progress: next,
          reason: 'analysis passed; gate still closed',
        };
      }
      if (next.passes < stage.analyses) {
        return {
          type: 'wait',
          at: nextDue(next, t),
          progress: next,
          reason: `analysis ${next.passes} of ${stage.analyses} passed`,
        };
      }
      const index = p.stageIndex + 1;
      const following = stages[index];
      if (following) {
        return {
          type: 'stage',
          stageIndex: index,
          traffic: following.traffic,
          progress: enterStage(index, next, now),
          reason: 'analysis passed',
        };
      }
      if (t.promotionGate)
        return {
          type: 'await-promotion',
          progress: next,
          reason: 'last step passed; waiting for the promotion gate',
        };
      return { type: 'promote', progress: next, reason: 'last step passed' };
    }
    default:
      return { type: 'wait', at: nextDue(next, t), progress: next };
  }
}
