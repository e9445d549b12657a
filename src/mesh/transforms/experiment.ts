import type { HttpMatchRequest, HttpRoute, HttpRouteDestination, VirtualServiceSpec } from '../istio.ts';
import type { ExperimentMatch } from '../types.ts';
import { invalid, isSubsetOf, managedRouteIndices, type RouteScope, vsName } from './scope.ts';
import { siblingDestination } from './weights.ts';

/** Whether a route sends everything to the canary subset, as the A/B route vane adds does. */
function isCanaryOnly(route: HttpRoute, scope: RouteScope): boolean {
  const dests = route.route ?? [];
  return dests.length > 0 && dests.every((d) => isSubsetOf(d, scope, scope.canarySubset));
}

/** The canary destination of the A/B route, copied from a managed route so host and port match. */
function canaryDestination(spec: VirtualServiceSpec, scope: RouteScope): HttpRouteDestination {
  const http = spec.http ?? [];
  for (const i of managedRouteIndices(spec, scope)) {
    const dests = http[i]!.route ?? [];
    const from =
      dests.find((d) => isSubsetOf(d, scope, scope.stableSubset)) ??
      dests.find((d) => isSubsetOf(d, scope, scope.canarySubset));
    if (from) {
      const { headers: _headers, ...rest } = siblingDestination(from, scope.canarySubset, 100);
      return rest;
    }
  }
  throw invalid(
    `${vsName(scope)} has no destination ${scope.host} subset ${scope.stableSubset} to copy for the A/B route`,
  );
}

/**
 * Adds or updates the A/B route: placed first, it sends requests matching any of `match` (Istio
 * HTTPMatchRequest) 100% to the canary. A route of that name that vane did not add (it sends
 * somewhere other than the canary) is refused rather than overwritten.
 */
export function setExperimentRoute(
  spec: VirtualServiceSpec,
  scope: RouteScope,
  experiment: ExperimentMatch,
): VirtualServiceSpec {
  if (!experiment.routeName) throw invalid(`the A/B route of ${vsName(scope)} needs a routeName`);
  if (!experiment.match.length || experiment.match.some((m) => Object.keys(m).length === 0)) {
    throw invalid(
      `the A/B route '${experiment.routeName}' of ${vsName(scope)} needs at least one non-empty match (headers, queryParams, uri ...); an empty match would send every request to the canary`,
    );
  }
  if (scope.routes?.includes(experiment.routeName)) {
    throw invalid(
      `the A/B route '${experiment.routeName}' of ${vsName(scope)} is also a managed route; name it differently`,
    );
  }
  const http = spec.http ?? [];
  const existing = http.findIndex((r) => r.name === experiment.routeName);
  if (existing >= 0 && !isCanaryOnly(http[existing]!, scope)) {
    throw invalid(
      `${vsName(scope)} already has an http route named '${experiment.routeName}' that vane did not add; choose another name for the A/B route`,
    );
  }
  const route: HttpRoute = {
    name: experiment.routeName,
    match: structuredClone(experiment.match) as HttpMatchRequest[],
    route: [canaryDestination(spec, scope)],
  };
  if (existing === 0 && JSON.stringify(http[0]) === JSON.stringify(route)) return spec;
  const rest = http.filter((_, i) => i !== existing);
  return { ...spec, http: [route, ...rest] };
}

/** Removes vane's A/B route; the input when there is none. */
export function removeExperimentRoute(
  spec: VirtualServiceSpec,
  scope: RouteScope,
  routeName: string,
): VirtualServiceSpec {
  const http = spec.http ?? [];
  const i = http.findIndex((r) => r.name === routeName);
  if (i < 0) return spec;
  if (!isCanaryOnly(http[i]!, scope)) {
    throw invalid(
      `${vsName(scope)} http route '${routeName}' now sends traffic beyond the canary; vane leaves it to you to remove`,
    );
  }
  return { ...spec, http: http.filter((_, j) => j !== i) };
}
