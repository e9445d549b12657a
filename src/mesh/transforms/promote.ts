import type { HttpRoute, VirtualServiceSpec } from '../istio.ts';
import type { PromotionMode } from '../types.ts';
import { removeExperimentRoute } from './experiment.ts';
import { withoutCanaryMirror } from './mirror.ts';
import { managedRouteIndices, type RouteScope, replaceRoutes } from './scope.ts';
import { routeShareTo } from './weights.ts';

/**
 * Every managed route sends the stable + canary share to one subset, without vane's mirror, and
 * vane's A/B route is gone. Repeating it changes nothing, so a retried promotion or rollback is safe.
 */
function allTo(
  spec: VirtualServiceSpec,
  scope: RouteScope,
  to: 'stable' | 'canary',
  experimentRoute: string | undefined,
): VirtualServiceSpec {
  const base = experimentRoute ? removeExperimentRoute(spec, scope, experimentRoute) : spec;
  const http = base.http ?? [];
  const next = new Map<number, HttpRoute>();
  for (const i of managedRouteIndices(base, scope, { allowNone: true })) {
    next.set(i, withoutCanaryMirror(routeShareTo(http[i]!, i, scope, to), scope));
  }
  return replaceRoutes(base, next);
}

/**
 * The VirtualService side of promotion. `shift`: the canary subset takes the stable destination's
 * place. `relabel`: the stable subset (by then selecting the canary's pods) takes everything and
 * the canary destination goes. The DestinationRule change (relabelStable) must land first.
 */
export function promoteVirtualService(
  spec: VirtualServiceSpec,
  scope: RouteScope,
  mode: PromotionMode,
  opts: { experimentRoute?: string } = {},
): VirtualServiceSpec {
  return allTo(spec, scope, mode === 'shift' ? 'canary' : 'stable', opts.experimentRoute);
}

/** Rollback of the VirtualService: 100% of the managed share to stable, canary destination, mirror and A/B route removed. */
export function rollbackVirtualService(
  spec: VirtualServiceSpec,
  scope: RouteScope,
  opts: { experimentRoute?: string } = {},
): VirtualServiceSpec {
  return allTo(spec, scope, 'stable', opts.experimentRoute);
}
