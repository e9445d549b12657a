import type { Weights } from '../types.ts';
import type { RouteWeights } from './weights.ts';

export type DriftResult =
  | { drifted: false }
  | {
      drifted: true;
      /** One line for the rollout's event: which route says what, against what vane wrote. */
      message: string;
      /** The routes whose weights differ from what vane wrote. */
      routes: RouteWeights[];
    };

/**
 * Whether the weights in the cluster differ from what vane last wrote. `actual` may carry the
 * weights of every managed route (as the router's readWeights does), so an edit to any one of
 * them counts.
 */
export function detectDrift(expected: Weights, actual: Weights & { routes?: RouteWeights[] }): DriftResult {
  const differs = (w: Weights) => w.stable !== expected.stable || w.canary !== expected.canary;
  const routes = actual.routes ?? [
    { route: '(managed)', weights: { stable: actual.stable, canary: actual.canary } },
  ];
  const drifted = routes.filter((r) => differs(r.weights));
  if (!drifted.length && !differs(actual)) return { drifted: false };
  const list = drifted.length
    ? drifted
    : [{ route: '(managed)', weights: { stable: actual.stable, canary: actual.canary } }];
  const said = list
    .map((r) => `route ${r.route} has stable ${r.weights.stable}/canary ${r.weights.canary}`)
    .join('; ');
  return {
    drifted: true,
    message: `${said}; vane last wrote stable ${expected.stable}/canary ${expected.canary}`,
    routes: list,
  };
}
