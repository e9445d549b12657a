// What the pages show, as pure functions of the API's data: a rollout page's model built from the
// rollout and its events, the list updated by events, and the actions a caller may take.
// No DOM here, so these run under a unit test as they are.

/** The operator actions, in the order the page shows them, with the scope each needs. */
export const ACTIONS = [
  {
    type: 'promote',
    label: 'Promote',
    scope: 'operate',
    explain: 'Open the current gate, or move on one step now.',
  },
  {
    type: 'approve',
    label: 'Approve',
    scope: 'operate',
    explain: 'Open the gate this rollout waits at, once.',
  },
  { type: 'pause', label: 'Pause', scope: 'operate', explain: 'Hold the rollout at its current weight.' },
  { type: 'resume', label: 'Resume', scope: 'operate', explain: 'Continue the paused rollout.' },
  {
    type: 'abort',
    label: 'Abort',
    scope: 'operate',
    danger: true,
    explain: 'Send all traffic back to the stable version and end the rollout as aborted.',
  },
];

const TERMINAL = ['succeeded', 'failed', 'aborted'];
export const isTerminal = (phase) => TERMINAL.includes(phase);

/**
 * The actions shown for a rollout: only those the caller's scopes allow (a token without
 * `operate` sees none) and that the API would accept in the rollout's phase, by the API's own
 * table of command phases. Approve is offered while the rollout waits at a gate.
 */
export function availableActions(rollout, scopes, commandPhases) {
  return ACTIONS.filter((a) => {
    if (!scopes.includes(a.scope)) return false;
    if (a.type === 'approve') {
      return (
        !isTerminal(rollout.phase) &&
        rollout.phase !== 'rolling-back' &&
        (!!rollout.gate || rollout.phase === 'awaiting-promotion')
      );
    }
    if (!(commandPhases[a.type] ?? []).includes(rollout.phase)) return false;
    // As the API's commandRefusal: promote while paused opens a gate only; a manual or drift pause needs resume first.
    if (a.type === 'promote' && rollout.phase === 'paused' && rollout.pause?.kind !== 'gate') return false;
    return true;
  });
}

/** A rollout page's model: the rollout, its events and the series the charts draw. */
export function rolloutModel(rollout) {
  return { rollout, events: [], weights: [], metrics: {} };
}

/** The model after one event (a new object; the old one is left as it was). */
export function applyEvent(model, ev) {
  const events = [...model.events, ev];
  let { rollout, weights, metrics } = model;
  if (ev.type === 'created') {
    weights = [...weights, { time: ev.time, canary: 0 }];
  }
  if (ev.type === 'transition' && ev.to) {
    rollout = { ...rollout, phase: ev.to, reason: ev.reason };
    if (isTerminal(ev.to)) rollout.endedAt = ev.time;
  }
  if (ev.weights) {
    rollout = { ...rollout, weights: ev.weights };
    weights = [...weights, { time: ev.time, canary: ev.weights.canary }];
  }
  if (ev.type === 'analysis' && Array.isArray(ev.results)) {
    metrics = { ...metrics };
    for (const r of ev.results) {
      const b = r.bounds ?? {};
      const point = {
        time: ev.time,
        canary: num(r.value),
        stable: num(r.stableValue),
        min: num(b.min),
        max: num(b.max),
        verdict: r.verdict,
      };
      metrics[r.name] = [...(metrics[r.name] ?? []), point];
    }
    const prev = rollout.lastAnalysis;
    if (!prev || !(prev.at > ev.time)) {
      rollout = {
        ...rollout,
        lastAnalysis: {
          verdict: ev.verdict,
          results: ev.results,
          at: ev.time,
          // Only the stored report has the request counts; keep the last known until it is read again.
          ...(prev?.requests !== undefined ? { requests: prev.requests } : {}),
          ...(prev?.minRequests !== undefined ? { minRequests: prev.minRequests } : {}),
        },
      };
    }
  }
  return { rollout, events, weights, metrics };
}

/** The model with a fresh copy of the rollout from the API (its events and series stay). */
export function withRollout(model, rollout) {
  return { ...model, rollout };
}

/** The gate history: who opened which gate when, and approvals stored ahead. */
export function gateHistory(events) {
  return events
    .filter((e) => e.type === 'gate' || (e.type === 'command' && /^promote/.test(e.reason)))
    .map((e) => ({ time: e.time, reason: e.reason, by: e.by }));
}

/**
 * The list after an event of the all-rollouts stream. Returns { rollouts, unknown } where
 * `unknown` is true when the event is about a rollout the list does not hold (read the list again).
 */
export function applyListEvent(rollouts, ev) {
  const i = rollouts.findIndex((r) => r.id === ev.rolloutId);
  if (i < 0) return { rollouts, unknown: true };
  let r = rollouts[i];
  if (ev.type === 'transition' && ev.to) r = { ...r, phase: ev.to, reason: ev.reason };
  if (ev.weights) r = { ...r, weights: ev.weights };
  const next = [...rollouts];
  next[i] = r;
  return { rollouts: next, unknown: false };
}

const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
