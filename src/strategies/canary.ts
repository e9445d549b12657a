import type { Stage } from './types.ts';

export interface CanaryStrategy {
  type: 'canary';
  /** Explicit canary weights, ascending; each may carry a manual gate. */
  steps?: (number | { weight: number; pause?: { /** ms */ duration?: number } })[];
  /** Or: a step size and a maximum (Flagger's stepWeight/maxWeight). */
  stepWeight?: number;
  maxWeight?: number;
  mirror?: { percent: number };
}

/** Weighted steps: explicit, or stepWeight up to maxWeight. */
export function canaryStages(s: CanaryStrategy): Stage[] {
  const steps =
    s.steps ??
    (() => {
      const step = s.stepWeight ?? 10;
      const max = s.maxWeight ?? 50;
      const out: number[] = [];
      for (let w = step; w < max; w += step) out.push(w);
      out.push(max);
      return out;
    })();
  return steps.map((step) => {
    const { weight, pause } = typeof step === 'number' ? { weight: step, pause: undefined } : step;
    return {
      traffic: { canaryWeight: weight, ...(s.mirror?.percent ? { mirrorPercent: s.mirror.percent } : {}) },
      analyses: 1,
      ...(pause ? { pause: pause.duration === undefined ? {} : { durationMs: pause.duration } } : {}),
    };
  });
}
