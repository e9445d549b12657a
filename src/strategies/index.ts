import { type AbTestStrategy, abTestStages } from './ab-test.ts';
import { type BlueGreenStrategy, blueGreenStages } from './blue-green.ts';
import { type CanaryStrategy, canaryStages } from './canary.ts';
import type { Stage } from './types.ts';

export type { AbTestStrategy, BlueGreenStrategy, CanaryStrategy };
export type Strategy = CanaryStrategy | BlueGreenStrategy | AbTestStrategy;
export * from './progress.ts';
export * from './types.ts';

/** The stages a strategy goes through before promotion. */
export function stagesOf(s: Strategy): Stage[] {
  switch (s.type) {
    case 'canary':
      return canaryStages(s);
    case 'blue-green':
      return blueGreenStages(s);
    case 'ab-test':
      return abTestStages(s);
  }
}
