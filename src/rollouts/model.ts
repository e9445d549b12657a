import type { Weights } from '../mesh/types.ts';
import type { AnalysisReport, MetricResult } from '../metrics/types.ts';
import type { Progress, StageTraffic } from '../strategies/index.ts';
import type { Phase } from './phases.ts';
import type { RolloutSpec } from './spec.ts';

export const COMMAND_TYPES = ['promote', 'promote-full', 'abort', 'pause', 'resume', 'retry'] as const;
export type CommandType = (typeof COMMAND_TYPES)[number];

/** An operator's command, stored on the rollout until a tick carries it out. */
export interface Command {
  id: string;
  type: CommandType;
  at: number;
  by?: string;
  reason?: string;
}

/** Why a rollout is paused. */
export type PauseKind = 'manual' | 'gate' | 'drift';

export interface Rollout {
  id: string;
  /** Compare-and-set version: every stored update bumps it. */
  version: number;
  spec: RolloutSpec;
  /** The spec as the user sent it (after the template was merged under it), for display and retry. */
  input: Record<string, unknown>;
  phase: Phase;
  /** Why it entered this phase. */
  reason: string;
  createdAt: number;
  updatedAt: number;
  phaseStartedAt: number;
  endedAt?: number;
  /** While rolling back: the terminal phase it ends in. */
  outcome?: 'failed' | 'aborted';
  /** While paused: what it resumes into, why, and until when (a timed gate). */
  pause?: { from: Phase; kind: PauseKind; until?: number };
  progress: Progress;
  /** The traffic vane wants (and, once `applied`, has written). */
  traffic: StageTraffic;
  weights: Weights;
  applied: boolean;
  /** Whether vane created the canary subset (so rollback removes it). */
  createdSubset: boolean;
  commands: Command[];
  /** The gate the rollout is held at, and since when (its deadline counts from then). */
  gate?: { key: string; since: number; message: string };
  /** Gates already opened for the step about to be taken (each approval or answer counts once). */
  openedGates?: string[];
  lastAnalysis?: AnalysisReport;
  /** Consecutive tick errors (outside calls failing); reset by a good tick. */
  errorCount: number;
  lastError?: string;
  /** What happened after the verdict (src/rollouts/after-verdict.ts): scale-downs and undo. */
  after?: AfterVerdict;
}

/** After the verdict: the old (or, after a rollback, the canary) workload, and undo. */
export interface AfterVerdict {
  /**
   * scheduled: a scale-down waits in the queue (`scaleDownAt`); kept: nothing is scaled down;
   * scaled-down: the workload was scaled to 0; undoing / undone: an undo runs / ran;
   * undo-failed: the last undo could not finish (`message`), it can be sent again.
   */
  state: 'scheduled' | 'kept' | 'scaled-down' | 'undoing' | 'undone' | 'undo-failed';
  /** "Deployment ns/name" of the workload scaled down. */
  workload?: string;
  scaleDownAt?: number;
  scaledDownAt?: number;
  /** Replicas it had before the scale-down, for undo. */
  replicas?: number;
  undoneAt?: number;
  undoneBy?: string;
  message?: string;
}

export type EventType =
  | 'created'
  | 'transition'
  | 'weight'
  | 'subset'
  | 'analysis'
  | 'command'
  | 'drift'
  | 'error'
  | 'gate'
  | 'notification'
  | 'scale'
  | 'undo';

/** One line of a rollout's history. */
export interface RolloutEvent {
  time: number;
  type: EventType;
  reason: string;
  from?: Phase;
  to?: Phase;
  weights?: Weights;
  results?: MetricResult[];
  verdict?: string;
  by?: string;
  /** Stream id, filled in when read. */
  id?: string;
}

/** What a client sees of a rollout. */
export function publicView(r: Rollout) {
  const { commands, ...rest } = r;
  return { ...rest, pendingCommands: commands.map((c) => c.type) };
}
