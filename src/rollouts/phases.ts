/** The closed set of rollout phases (DESIGN.md "Phases"). */
export const PHASES = [
  /** Accepted, not yet looked at by a worker. */
  'pending',
  /** Preflight, snapshot of the original objects, canary subset ensured, canary workload ready. */
  'initializing',
  /** Stepping traffic to the canary, analysing each step. */
  'progressing',
  /** Held by an operator, a step's manual gate, or drift. */
  'paused',
  /** At max weight; a gate (manual or webhook) is closed; analysis goes on. */
  'awaiting-promotion',
  /** Making the canary the new stable. */
  'promoting',
  /** Sending all traffic back to the stable version. */
  'rolling-back',
  /** Promoted. Terminal. */
  'succeeded',
  /** Rolled back by analysis, a deadline, drift or an error. Terminal. */
  'failed',
  /** Rolled back by an operator. Terminal. */
  'aborted',
] as const;

export type Phase = (typeof PHASES)[number];

export const TERMINAL_PHASES: readonly Phase[] = ['succeeded', 'failed', 'aborted'];

export function isTerminal(phase: Phase): boolean {
  return TERMINAL_PHASES.includes(phase);
}

/** Transitions the state machine allows; anything else is a bug. */
const ALLOWED: Record<Phase, readonly Phase[]> = {
  pending: ['initializing', 'rolling-back'],
  initializing: ['progressing', 'paused', 'rolling-back'],
  progressing: ['paused', 'awaiting-promotion', 'promoting', 'rolling-back'],
  paused: ['progressing', 'awaiting-promotion', 'initializing', 'promoting', 'rolling-back'],
  'awaiting-promotion': ['promoting', 'paused', 'rolling-back'],
  promoting: ['succeeded', 'rolling-back'],
  'rolling-back': ['failed', 'aborted'],
  succeeded: [],
  failed: [],
  aborted: [],
};

export function canTransition(from: Phase, to: Phase): boolean {
  return ALLOWED[from].includes(to);
}
