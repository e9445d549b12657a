import { sameHost } from '../host.ts';
import type { HttpRoute, HttpRouteDestination, VirtualServiceSpec } from '../istio.ts';
import { MeshError, type MeshTarget } from '../types.ts';

/** What the VirtualService transforms need to know about a target, with the host already resolved. */
export interface RouteScope {
  namespace: string;
  virtualService: string;
  /** The destination host of the managed routes, as written in the target or the DestinationRule. */
  host: string;
  stableSubset: string;
  canarySubset: string;
  /** Names of the managed http routes; default: every http route with a destination `host`/`stableSubset`. */
  routes?: string[];
}

/**
 * The scope of a target. The host defaults to the DestinationRule's, so a target may leave it out;
 * without either there is nothing to match destinations against.
 */
export function routeScope(target: MeshTarget, destinationRuleHost?: string): RouteScope {
  const host = target.host ?? destinationRuleHost;
  if (!host) {
    throw new MeshError(
      'Invalid',
      `target ${target.namespace}/${target.virtualService} names no host and DestinationRule ${target.namespace}/${target.destinationRule} gives none; set target.host`,
      false,
    );
  }
  return {
    namespace: target.namespace,
    virtualService: target.virtualService,
    host,
    stableSubset: target.stableSubset,
    canarySubset: target.canarySubset,
    ...(target.routes?.length ? { routes: target.routes } : {}),
  };
}

export function vsName(scope: RouteScope): string {
  return `VirtualService ${scope.namespace}/${scope.virtualService}`;
}

/** How a route is named in messages: its name, or its position when it has none. */
export function routeName(route: HttpRoute, index: number): string {
  return route.name ? `'${route.name}'` : `#${index} (unnamed)`;
}

export function isSubsetOf(dest: HttpRouteDestination, scope: RouteScope, subset: string): boolean {
  return dest.destination.subset === subset && sameHost(dest.destination.host, scope.host, scope.namespace);
}

export function invalid(message: string): MeshError {
  return new MeshError('Invalid', message, false);
}

/**
 * Indices of the managed http routes. Named routes must all exist. Without names, every route with
 * a stable destination is managed; `allowNone` lets promotion and rollback be repeated after the
 * stable destination is gone.
 */
export function managedRouteIndices(
  spec: VirtualServiceSpec,
  scope: RouteScope,
  opts: { allowNone?: boolean } = {},
): number[] {
  const http = spec.http ?? [];
  if (scope.routes) {
    const indices: number[] = [];
    for (const name of scope.routes) {
      const i = http.findIndex((r) => r.name === name);
      if (i < 0) {
        const names = http.map((r, j) => r.name ?? `#${j} (unnamed)`);
        throw new MeshError(
          'NotFound',
          `${vsName(scope)} has no http route named '${name}'; routes are: ${names.join(', ') || '(none)'}`,
          false,
        );
      }
      indices.push(i);
    }
    return indices;
  }
  const indices = http.flatMap((r, i) =>
    (r.route ?? []).some((d) => isSubsetOf(d, scope, scope.stableSubset)) ? [i] : [],
  );
  if (!indices.length && !opts.allowNone) {
    throw new MeshError(
      'NotFound',
      `${vsName(scope)} has no http route with a destination ${scope.host} subset ${scope.stableSubset}; add one, or name the routes to manage in target.routes`,
      false,
    );
  }
  return indices;
}

/** A copy of the spec with the routes at the given indices replaced; the input itself when nothing changed. */
export function replaceRoutes(spec: VirtualServiceSpec, next: Map<number, HttpRoute>): VirtualServiceSpec {
  const http = spec.http ?? [];
  let changed = false;
  const out = http.map((r, i) => {
    const n = next.get(i);
    if (n && n !== r) {
      changed = true;
      return n;
    }
    return r;
  });
  return changed ? { ...spec, http: out } : spec;
}
