import type { HttpRoute, HttpRouteDestination, VirtualServiceSpec } from '../istio.ts';
import type { Weights } from '../types.ts';
import {
  invalid,
  isSubsetOf,
  managedRouteIndices,
  type RouteScope,
  replaceRoutes,
  routeName,
  vsName,
} from './scope.ts';

/** The managed weights of one route. */
export interface RouteWeights {
  /** The route's name, or `#index` when it has none. */
  route: string;
  weights: Weights;
}

/**
 * Integers summing to 100 in the proportions of `raw` (largest remainder; ties go to the earlier
 * entry so the result is deterministic).
 */
export function normalizeTo100(raw: number[]): number[] {
  const total = raw.reduce((a, b) => a + b, 0);
  const exact = raw.map((w) => (w * 100) / total);
  const out = exact.map(Math.floor);
  let rest = 100 - out.reduce((a, b) => a + b, 0);
  const order = exact
    .map((e, i) => ({ i, frac: e - Math.floor(e) }))
    .sort((a, b) => b.frac - a.frac || a.i - b.i);
  for (const { i } of order) {
    if (rest <= 0) break;
    out[i]! += 1;
    rest -= 1;
  }
  return out;
}

/**
 * The share of traffic each destination of a route gets, as integers summing to 100: Istio's
 * weights are relative (weight / sum), a single destination gets everything, and a route whose
 * weights total 0 is refused.
 */
export function effectiveWeights(route: HttpRoute, where: string): number[] {
  const dests = route.route ?? [];
  if (dests.length === 0) return [];
  if (dests.length === 1) return [100];
  const raw = dests.map((d) => d.weight ?? 0);
  if (raw.some((w) => !Number.isFinite(w) || w < 0)) {
    throw invalid(
      `${where} has a negative or non-numeric weight (${raw.join(', ')}); weights must be integers >= 0`,
    );
  }
  const total = raw.reduce((a, b) => a + b, 0);
  if (total === 0) {
    throw invalid(
      `${where} has weights that total 0, which Istio refuses; give its destinations weights summing to 100`,
    );
  }
  if (total === 100 && raw.every(Number.isInteger)) return raw;
  return normalizeTo100(raw);
}

interface RouteParts {
  dests: HttpRouteDestination[];
  stable: number;
  canary: number;
  current: number[];
  where: string;
}

function routeParts(route: HttpRoute, index: number, scope: RouteScope): RouteParts {
  const where = `${vsName(scope)} http route ${routeName(route, index)}`;
  const dests = route.route ?? [];
  const find = (subset: string) => {
    const found = dests.flatMap((d, i) => (isSubsetOf(d, scope, subset) ? [i] : []));
    if (found.length > 1) {
      throw invalid(
        `${where} has ${found.length} destinations ${scope.host} subset ${subset}; vane manages exactly one, so merge them`,
      );
    }
    return found[0] ?? -1;
  };
  return {
    dests,
    stable: find(scope.stableSubset),
    canary: find(scope.canarySubset),
    current: effectiveWeights(route, where),
    where,
  };
}

function weightsOf(p: RouteParts): Weights {
  return { stable: p.current[p.stable] ?? 0, canary: p.current[p.canary] ?? 0 };
}

/** A destination for `subset`, copied from a sibling so port and headers match. */
export function siblingDestination(
  from: HttpRouteDestination,
  subset: string,
  weight: number,
): HttpRouteDestination {
  const copy = structuredClone(from);
  return { ...copy, destination: { ...copy.destination, subset }, weight };
}

/** Writes every weight explicitly, so the route sums to 100 on its own. */
function withWeights(route: HttpRoute, dests: HttpRouteDestination[], weights: number[]): HttpRoute {
  return { ...route, route: dests.map((d, i) => ({ ...d, weight: weights[i]! })) };
}

function checkWeights(w: Weights, where: string): void {
  for (const [k, v] of Object.entries(w)) {
    if (!Number.isInteger(v) || v < 0 || v > 100) {
      throw invalid(`weight ${k}=${v} for ${where} must be an integer from 0 to 100`);
    }
  }
  if (w.stable + w.canary !== 100) {
    throw invalid(
      `weights for ${where} must sum to 100: stable ${w.stable} + canary ${w.canary} = ${w.stable + w.canary}`,
    );
  }
}

/**
 * The stable/canary split (of 100) as weights within a route where other destinations keep
 * `100 - share`. A side asked for more than 0 never gets 0, so a 1% canary still sees traffic.
 */
export function scaleToShare(w: Weights, share: number): Weights {
  if (share === 100) return w;
  let canary = Math.round((w.canary * share) / 100);
  if (w.canary > 0 && canary === 0 && share > 0) canary = 1;
  if (w.stable > 0 && canary === share && share > 1) canary = share - 1;
  return { stable: share - canary, canary };
}

/**
 * The stable/canary split (of 100) that route weights within a share stand for. `hint` (what
 * vane last asked for) is returned when it maps to exactly these weights, because several splits
 * can round to the same weights when other destinations take part of the route.
 */
export function splitOfShare(inShare: Weights, hint?: Weights): Weights {
  const share = inShare.stable + inShare.canary;
  if (share === 100) return inShare;
  if (hint) {
    const h = scaleToShare(hint, share);
    if (h.stable === inShare.stable && h.canary === inShare.canary) return hint;
  }
  if (share === 0) return { stable: 0, canary: 0 };
  const canary = Math.round((inShare.canary * 100) / share);
  return { stable: 100 - canary, canary };
}

/** Sets stable and canary in one route; the route itself when it already says so. */
function setRouteWeights(route: HttpRoute, index: number, scope: RouteScope, split: Weights): HttpRoute {
  const p = routeParts(route, index, scope);
  if (p.stable < 0 && p.canary < 0) {
    throw invalid(
      `${p.where} has no destination ${scope.host} subset ${scope.stableSubset}; add it, or leave the route out of target.routes`,
    );
  }
  const others = p.current.reduce((sum, v, i) => (i === p.stable || i === p.canary ? sum : sum + v), 0);
  if (others === 100) {
    throw invalid(
      `${p.where}: its other destinations take 100% of the traffic, so nothing is left to split between stable and canary; give ${scope.host} subset ${scope.stableSubset} a weight`,
    );
  }
  const w = scaleToShare(split, 100 - others);
  if (p.stable >= 0 && p.canary >= 0) {
    if (p.current[p.stable] === w.stable && p.current[p.canary] === w.canary) return route;
    const next = [...p.current];
    next[p.stable] = w.stable;
    next[p.canary] = w.canary;
    return withWeights(route, p.dests, next);
  }
  // One of the two is missing: add it beside the other only when it gets traffic, so a route at
  // 100/0 stays as the user wrote it.
  const present = p.stable >= 0 ? p.stable : p.canary;
  const missingSubset = p.stable >= 0 ? scope.canarySubset : scope.stableSubset;
  const missingWeight = p.stable >= 0 ? w.canary : w.stable;
  const presentWeight = p.stable >= 0 ? w.stable : w.canary;
  if (missingWeight === 0) {
    if (p.current[present] === presentWeight) return route;
    const next = [...p.current];
    next[present] = presentWeight;
    return withWeights(route, p.dests, next);
  }
  const dests = [...p.dests];
  const weights = [...p.current];
  weights[present] = presentWeight;
  const added = siblingDestination(p.dests[present]!, missingSubset, missingWeight);
  // Stable first, then canary: the order a person reading the route expects.
  const at = p.stable >= 0 ? present + 1 : present;
  dests.splice(at, 0, added);
  weights.splice(at, 0, missingWeight);
  return withWeights(route, dests, weights);
}

/**
 * Splits the managed traffic of every managed route between stable and canary (`w` sums to 100).
 * The canary destination is added (copying the stable one's port and headers) when it is missing
 * and gets traffic. Other destinations keep their share and the split applies to the rest, so each
 * route still sums to 100; a route with no rest is refused. Returns the input when nothing changes.
 */
export function setWeights(spec: VirtualServiceSpec, scope: RouteScope, w: Weights): VirtualServiceSpec {
  checkWeights(w, vsName(scope));
  const http = spec.http ?? [];
  const next = new Map<number, HttpRoute>();
  for (const i of managedRouteIndices(spec, scope)) next.set(i, setRouteWeights(http[i]!, i, scope, w));
  return replaceRoutes(spec, next);
}

/**
 * The stable/canary split (of 100) of every managed route; `hint` is what vane last wrote (see
 * splitOfShare).
 */
export function readRouteWeights(
  spec: VirtualServiceSpec,
  scope: RouteScope,
  hint?: Weights,
): RouteWeights[] {
  const http = spec.http ?? [];
  return managedRouteIndices(spec, scope).map((i) => {
    const route = http[i]!;
    return {
      route: route.name ?? `#${i}`,
      weights: splitOfShare(weightsOf(routeParts(route, i, scope)), hint),
    };
  });
}

/** The stable/canary split of the first managed route (vane writes the same split to all of them). */
export function readWeights(spec: VirtualServiceSpec, scope: RouteScope, hint?: Weights): Weights {
  return readRouteWeights(spec, scope, hint)[0]!.weights;
}

/**
 * Sends the whole stable + canary share of a route to one subset and removes the other subset's
 * destination (promotion, rollback). A route with neither destination is left alone.
 */
export function routeShareTo(
  route: HttpRoute,
  index: number,
  scope: RouteScope,
  to: 'stable' | 'canary',
): HttpRoute {
  const p = routeParts(route, index, scope);
  const keep = to === 'stable' ? p.stable : p.canary;
  const drop = to === 'stable' ? p.canary : p.stable;
  if (keep < 0 && drop < 0) return route;
  const share = (p.current[keep] ?? 0) + (p.current[drop] ?? 0);
  if (drop < 0 && p.current[keep] === share && (p.dests.length === 1 || p.dests[keep]!.weight === share))
    return route;
  const dests = [...p.dests];
  const weights = [...p.current];
  if (keep < 0) {
    // Only the other subset is left (e.g. rollback after a shift): turn it into this one in place.
    const subset = to === 'stable' ? scope.stableSubset : scope.canarySubset;
    dests[drop] = siblingDestination(p.dests[drop]!, subset, share);
    weights[drop] = share;
  } else {
    weights[keep] = share;
    if (drop >= 0) {
      dests.splice(drop, 1);
      weights.splice(drop, 1);
    }
  }
  return withWeights(route, dests, weights);
}
