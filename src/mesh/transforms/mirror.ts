import { sameHost } from '../host.ts';
import type { HttpRoute, VirtualServiceSpec } from '../istio.ts';
import type { MirrorSetting } from '../types.ts';
import {
  invalid,
  isSubsetOf,
  managedRouteIndices,
  type RouteScope,
  replaceRoutes,
  routeName,
  vsName,
} from './scope.ts';

/** Whether the route's mirror is the one vane sets (the canary subset of the target host). */
export function isCanaryMirror(route: HttpRoute, scope: RouteScope): boolean {
  const m = route.mirror;
  return !!m && m.subset === scope.canarySubset && sameHost(m.host, scope.host, scope.namespace);
}

/** The route without vane's mirror; the route itself when it has none. */
export function withoutCanaryMirror(route: HttpRoute, scope: RouteScope): HttpRoute {
  if (!isCanaryMirror(route, scope)) return route;
  const { mirror: _mirror, mirrorPercentage: _pct, ...rest } = route;
  return rest;
}

function withCanaryMirror(route: HttpRoute, index: number, scope: RouteScope, percent: number): HttpRoute {
  const where = `${vsName(scope)} http route ${routeName(route, index)}`;
  if (route.mirror && !isCanaryMirror(route, scope)) {
    throw invalid(
      `${where} already mirrors to ${route.mirror.host}${route.mirror.subset ? ` subset ${route.mirror.subset}` : ''}; remove that mirror before mirroring to the canary`,
    );
  }
  const from = (route.route ?? []).find(
    (d) => isSubsetOf(d, scope, scope.stableSubset) || isSubsetOf(d, scope, scope.canarySubset),
  );
  if (!from)
    throw invalid(`${where} has no destination ${scope.host} subset ${scope.stableSubset} to mirror`);
  const { host, port } = from.destination;
  const mirror = { host, subset: scope.canarySubset, ...(port ? { port: structuredClone(port) } : {}) };
  if (JSON.stringify(route.mirror) === JSON.stringify(mirror) && route.mirrorPercentage?.value === percent) {
    return route;
  }
  return { ...route, mirror, mirrorPercentage: { value: percent } };
}

/** Sets (a percentage) or clears (null) mirroring of the managed routes to the canary subset. */
export function setMirror(
  spec: VirtualServiceSpec,
  scope: RouteScope,
  mirror: MirrorSetting | null,
): VirtualServiceSpec {
  if (mirror && !(Number.isFinite(mirror.percent) && mirror.percent >= 0 && mirror.percent <= 100)) {
    throw invalid(`mirror percent ${mirror.percent} for ${vsName(scope)} must be from 0 to 100`);
  }
  const http = spec.http ?? [];
  const next = new Map<number, HttpRoute>();
  for (const i of managedRouteIndices(spec, scope, { allowNone: !mirror })) {
    next.set(
      i,
      mirror ? withCanaryMirror(http[i]!, i, scope, mirror.percent) : withoutCanaryMirror(http[i]!, scope),
    );
  }
  return replaceRoutes(spec, next);
}
