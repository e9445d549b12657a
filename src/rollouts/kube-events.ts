import type { KubeEventInput, KubeEventSink } from '../mesh/kube-workloads.ts';
import { summarize } from '../notify/slack.ts';
import type { EventListener } from './context.ts';
import type { Rollout, RolloutEvent } from './model.ts';

/** The Kubernetes Event reason of a rollout event; undefined: not written to the cluster. */
export function kubeReasonOf(
  e: RolloutEvent,
): { reason: KubeEventInput['reason']; warning?: boolean } | undefined {
  switch (e.type) {
    case 'transition':
      if (e.to === 'succeeded') return { reason: 'Promoted' };
      if (e.to === 'paused') return { reason: 'Paused' };
      if (e.to === 'rolling-back' || e.to === 'failed' || e.to === 'aborted')
        return { reason: 'RolledBack', warning: true };
      return { reason: 'Progressing' };
    case 'weight':
      if (e.reason.startsWith('rolled back')) return { reason: 'RolledBack', warning: true };
      if (e.reason.startsWith('promoted')) return { reason: 'Promoted' };
      if (e.reason.startsWith('undone')) return undefined; // the undo event itself says it
      return { reason: 'Progressing' };
    case 'undo':
      return e.reason.startsWith('undo failed') ? { reason: 'Undone', warning: true } : { reason: 'Undone' };
    case 'scale':
      if (/scaled up/.test(e.reason)) return { reason: 'ScaledUp' };
      if (/ will be scaled to 0 |keeps running/.test(e.reason)) return { reason: 'ScaleDownScheduled' };
      return /not scaled down/.test(e.reason)
        ? { reason: 'ScaledDown', warning: true }
        : { reason: 'ScaledDown' };
    default:
      return undefined;
  }
}

/**
 * Every transition and weight change (and scale-down, undo) as a Kubernetes Event on the rollout's
 * VirtualService, with the sentence vane shows elsewhere. Best effort and off the tick: the listener
 * returns at once, events of one rollout are written in order, a failure is counted, never thrown.
 */
export function kubeEventsOnEvents(
  sink: KubeEventSink,
  /** Events waiting to be written in this process; past it new ones are dropped (counted). Default 500. */
  opts: { maxPending?: number; onDropped?: () => void } = {},
): EventListener {
  const chains = new Map<string, Promise<void>>();
  const maxPending = opts.maxPending ?? 500;
  let pending = 0;
  return (r: Rollout, events: RolloutEvent[]) => {
    const t = r.spec.target;
    const inputs: KubeEventInput[] = [];
    for (const e of events) {
      const k = kubeReasonOf(e);
      if (!k) continue;
      inputs.push({
        namespace: t.namespace,
        virtualService: t.virtualService,
        ...(t.cluster ? { cluster: t.cluster } : {}),
        reason: k.reason,
        message: `rollout ${r.id}: ${summarize(r, e)}`,
        ...(k.warning ? { warning: true } : {}),
      });
    }
    if (!inputs.length) return;
    // An Events API that hangs must not grow memory without bound: what does not fit is dropped.
    const room = Math.max(0, maxPending - pending);
    for (let i = room; i < inputs.length; i++) opts.onDropped?.();
    inputs.splice(room);
    if (!inputs.length) return;
    pending += inputs.length;
    const prev = chains.get(r.id) ?? Promise.resolve();
    const next = prev.then(async () => {
      for (const i of inputs) {
        await sink.emit(i);
        pending--;
      }
    });
    chains.set(r.id, next);
    void next.finally(() => {
      if (chains.get(r.id) === next) chains.delete(r.id);
    });
  };
}

/** Several listeners as one. */
export function allListeners(...ls: (EventListener | undefined)[]): EventListener {
  return (r, events) => {
    for (const l of ls) {
      try {
        l?.(r, events);
      } catch {
        // a listener never fails the caller
      }
    }
  };
}
