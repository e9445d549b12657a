import type { Stage } from './types.ts';

export interface AbTestStrategy {
  type: 'ab-test';
  /** Requests matching any of these (Istio HTTPMatchRequest: headers, cookies via the cookie header, queryParams) go to the canary. */
  match: Record<string, unknown>[];
  /** Passing analyses before promotion. Default 10. */
  iterations?: number;
}

/** Matching requests only, for N analysis windows, then promote. */
export function abTestStages(s: AbTestStrategy): Stage[] {
  return [{ traffic: { canaryWeight: 0, match: s.match }, analyses: s.iterations ?? 10 }];
}
