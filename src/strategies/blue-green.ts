import type { Stage } from './types.ts';

export interface BlueGreenStrategy {
  type: 'blue-green';
  /** Preview the canary with mirrored traffic (percent), or with requests matching these. Default: mirror 100%. */
  preview?: { mirrorPercent?: number; match?: Record<string, unknown>[] };
  /** Passing analyses on the preview before the switch. Default 1. */
  iterations?: number;
}

/** 0% of live traffic while the preview is analysed, then promotion switches 100% at once. */
export function blueGreenStages(s: BlueGreenStrategy): Stage[] {
  const match = s.preview?.match;
  const traffic = match?.length
    ? { canaryWeight: 0, match }
    : { canaryWeight: 0, mirrorPercent: s.preview?.mirrorPercent ?? 100 };
  return [{ traffic, analyses: s.iterations ?? 1 }];
}
