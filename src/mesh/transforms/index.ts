/** The pure transforms of VirtualService and DestinationRule specs: no I/O, inputs never mutated. */
export { type DriftResult, detectDrift } from './drift.ts';
export { removeExperimentRoute, setExperimentRoute } from './experiment.ts';
export { isCanaryMirror, setMirror } from './mirror.ts';
export { promoteVirtualService, rollbackVirtualService } from './promote.ts';
export { isSubsetOf, managedRouteIndices, type RouteScope, routeScope } from './scope.ts';
export { ensureSubset, type ObjectRef, relabelSubset, removeSubset } from './subsets.ts';
export {
  effectiveWeights,
  normalizeTo100,
  type RouteWeights,
  readRouteWeights,
  readWeights,
  scaleToShare,
  setWeights,
  splitOfShare,
} from './weights.ts';
