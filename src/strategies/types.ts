/**
 * Strategies are pure: they turn a strategy spec into stages, and a rollout's progress plus what
 * was observed into a decision. No I/O and no clock: `now` is passed in.
 */

/** Traffic while a stage holds. */
export interface StageTraffic {
  /** Percent of the managed routes' traffic to the canary (the stable gets the rest). */
  canaryWeight: number;
  /** A/B: requests matching any of these (Istio HTTPMatchRequest) go 100% to the canary. */
  match?: Record<string, unknown>[];
  /** Mirror this percent of the stable's traffic to the canary. */
  mirrorPercent?: number;
}

export interface Stage {
  traffic: StageTraffic;
  /** How many consecutive passing full analyses the stage needs before the next one. Default 1. */
  analyses: number;
  /** A manual gate once the stage's traffic is set: wait for resume/promote, or `durationMs` when given. */
  pause?: { durationMs?: number };
}

/** Timing and thresholds every strategy shares. */
export interface Timing {
  /** How long each analysis window of a stage lasts. */
  stepIntervalMs: number;
  /** How often critical checks run between full analyses. */
  guardIntervalMs: number;
  /** Failed full analyses (consecutive) that trigger a rollback. */
  failureThreshold: number;
  /** How long analysis may stay inconclusive before rollback. */
  inconclusiveDeadlineMs: number;
  /** Whether the promotion waits at a gate (manual approval or a webhook). */
  promotionGate: boolean;
  /** How long a closed gate may hold the rollout. */
  gateDeadlineMs: number;
}

/** Where a progressing rollout is. Stored with the rollout. */
export interface Progress {
  /** Index into the stages; -1 before the first one. */
  stageIndex: number;
  /** When the current stage's traffic was set (the analysis window starts then). */
  stageStartedAt: number;
  /** Start of the current analysis window within the stage. */
  windowStartedAt: number;
  /** Passing full analyses in the current stage. */
  passes: number;
  /** Consecutive failed full analyses. */
  failures: number;
  /** When analysis first became inconclusive in a row (cleared by a conclusive result). */
  inconclusiveSince?: number;
  lastGuardAt: number;
  /** When the last full analysis ran. */
  lastAnalysisAt: number;
  /** A stage's manual gate was passed (resumed or timed out). */
  gatePassed: boolean;
}

export type Verdict = 'pass' | 'fail' | 'inconclusive';

export interface Observation {
  /** Verdict of the critical checks, when they ran this tick. */
  guard?: Verdict;
  /** Verdict of the full analysis, when it ran this tick. */
  analysis?: Verdict;
}

export type Decision =
  /** Nothing to do until `at`; `progress` holds updated counters. */
  | { type: 'wait'; at: number; progress: Progress; reason?: string }
  /** Set the traffic of stage `stageIndex`. */
  | { type: 'stage'; stageIndex: number; traffic: StageTraffic; progress: Progress; reason: string }
  /** Hold at a stage's manual gate. */
  | { type: 'pause'; until?: number; progress: Progress; reason: string }
  | { type: 'await-promotion'; progress: Progress; reason: string }
  | { type: 'promote'; progress: Progress; reason: string }
  | { type: 'rollback'; progress: Progress; reason: string };

/** Which analysis a tick should run before deciding. */
export type AnalysisNeed = 'none' | 'critical' | 'full';
