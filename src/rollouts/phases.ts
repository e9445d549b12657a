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
  pending: ['initializing', 'paused', 'rolling-back'],
  initializing: ['progressing', 'paused', 'rolling-back'],
  progressing: ['paused', 'awaiting-promotion', 'promoting', 'rolling-back'],
  paused: ['pending', 'initializing', 'progressing', 'awaiting-promotion', 'promoting', 'rolling-back'],
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

/** An operator's command on a live rollout (`retry` starts a new rollout from an ended one). */
export type LiveCommand = 'promote' | 'promote-full' | 'abort' | 'pause' | 'resume';

/**
 * The one table of which command applies in which phase. The API refuses a command outside it
 * (409), and the engine drops one that no longer applies by the time a tick sees it, with an event.
 * `retry` starts a new rollout with the same spec, so it applies only where traffic is back on the
 * stable version: after a succeeded rollout the canary is the new stable, and a retry would send
 * every user back to the old one.
 */
export const COMMAND_PHASES: Record<LiveCommand | 'retry' | 'undo', readonly Phase[]> = {
  abort: ['pending', 'initializing', 'progressing', 'paused', 'awaiting-promotion', 'promoting'],
  pause: ['pending', 'initializing', 'progressing', 'awaiting-promotion'],
  resume: ['paused'],
  promote: ['progressing', 'paused', 'awaiting-promotion'],
  'promote-full': ['progressing', 'paused', 'awaiting-promotion'],
  /**
   * Undo a promotion: only a succeeded rollout whose old version is known (stable.workload) and
   * still exists (running, or scaled down and kept), not undone yet. Carried out by the
   * after-verdict worker, not by a tick (src/rollouts/after-verdict.ts).
   */
  undo: ['succeeded'],
  retry: ['failed', 'aborted'],
};

/** Why `type` cannot apply to a rollout in this state; undefined when it can. Read by the API and the engine alike. */
export function commandRefusal(
  r: {
    phase: Phase;
    pause?: { from: Phase; kind: string } | undefined;
    spec?: { stable: { workload?: { name: string } | undefined } };
    after?: { state: string } | undefined;
  },
  type: LiveCommand | 'retry' | 'undo',
): string | undefined {
  const phases = COMMAND_PHASES[type];
  if (type === 'retry' && r.phase === 'succeeded') {
    return 'it succeeded, so its canary is the new stable and a retry would send all traffic back to the old version; start a new rollout instead';
  }
  if (!phases.includes(r.phase)) return `it is ${r.phase}; ${type} applies when it is ${phases.join(', ')}`;
  if (type === 'undo') {
    if (!r.spec?.stable.workload)
      return 'its spec names no stable.workload, so vane cannot tell whether the old version still runs';
    if (r.after?.state === 'undoing') return 'an undo is already running';
    if (r.after?.state === 'undone') return 'it was undone already';
    return undefined;
  }
  if (r.phase === 'paused') {
    if (type === 'promote' && r.pause?.kind !== 'gate') {
      return `it is paused (${r.pause?.kind ?? 'manual'}); resume it first, or use promote-full`;
    }
    if (type === 'promote-full' && (r.pause?.from === 'pending' || r.pause?.from === 'initializing')) {
      return `it was paused while ${r.pause.from}, before its canary was ready; resume it first`;
    }
  }
  return undefined;
}
