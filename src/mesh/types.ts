/**
 * The contract between the rollout engine and Istio. Implementations: the Kubernetes adapter
 * (src/mesh/kube-router.ts) over @kubernetes/client-node. Everything here is data; the pure
 * transforms live in src/mesh/transforms/.
 */

/** What a rollout manages inside the user's own objects. */
export interface MeshTarget {
  namespace: string;
  virtualService: string;
  destinationRule: string;
  /** Names of the http routes to manage; default: every http route whose destinations include the stable subset of `host`. */
  routes?: string[];
  /** Destination host inside those routes; default: the DestinationRule's host. */
  host?: string;
  stableSubset: string;
  canarySubset: string;
  /** Pod labels that select the canary (the canary subset's labels). */
  canaryLabels: Record<string, string>;
  /** Kubeconfig context of the cluster; default: the current one. */
  cluster?: string;
  /**
   * Called right before every write of the VirtualService or DestinationRule; throws to stop the
   * write (the engine's tick checks it still holds its lease, so a stale tick writes nothing).
   */
  fence?: () => Promise<void>;
}

/** Managed weights as the VirtualService says now (normalized to integers summing to the stable+canary share). */
export interface Weights {
  stable: number;
  canary: number;
}

/** A/B route: requests matching any of these go 100% to the canary. Shapes are Istio's HTTPMatchRequest. */
export interface ExperimentMatch {
  /** Name of the route vane adds, placed first. */
  routeName: string;
  match: Record<string, unknown>[];
}

export interface MirrorSetting {
  /** 0..100 */
  percent: number;
}

export type PromotionMode = 'shift' | 'relabel';

/** What vane wrote last, recorded by the engine to detect drift. */
export interface RouterState {
  /** The managed weights per managed route name (or index) after the last write. */
  weights: Weights;
  /** resourceVersion of the VirtualService after the last write. */
  virtualServiceVersion?: string;
}

/** Result of a write: whether anything changed, and the object's new resourceVersion. */
export interface WriteResult {
  changed: boolean;
  resourceVersion?: string;
}

/** Traffic control over one target. Every method reads the live object, transforms it, and writes with optimistic concurrency. */
export interface TrafficRouter {
  /** Saves the original VirtualService and DestinationRule specs (as annotations) and marks the owner rollout. Idempotent. */
  snapshot(target: MeshTarget, rolloutId: string): Promise<void>;
  /** Ensures the canary subset exists in the DestinationRule with the canary labels; returns whether vane created it. */
  ensureCanarySubset(target: MeshTarget): Promise<WriteResult & { created: boolean }>;
  /** Reads the managed weights as the cluster has them now. */
  readWeights(target: MeshTarget): Promise<Weights>;
  /** Sets the managed weights (stable + canary = 100). Writes nothing when they already are. */
  setWeights(target: MeshTarget, weights: Weights): Promise<WriteResult>;
  /** Adds/updates (match given) or removes (null) the A/B route. */
  setExperiment(target: MeshTarget, experiment: ExperimentMatch | null): Promise<WriteResult>;
  /** Sets or clears (null) mirroring of the managed routes to the canary. */
  setMirror(target: MeshTarget, mirror: MirrorSetting | null): Promise<WriteResult>;
  /** Promotion: DestinationRule change first, then the VirtualService (DESIGN.md "promoting"). */
  promote(target: MeshTarget, mode: PromotionMode): Promise<void>;
  /**
   * 100% to stable (canary destination, A/B route and mirror removed), then every subset vane wrote
   * put back as the snapshot had it (a relabelled stable, a pre-existing canary) or removed (one vane
   * created), unless someone else changed it since; vane's annotations go in the same writes.
   * `removeCanarySubset` removes the canary subset when no record of vane's writes exists. With
   * `rolloutId`, an object this rollout does not hold (never snapshotted, or held by another) is left alone.
   */
  rollback(target: MeshTarget, opts: { removeCanarySubset: boolean; rolloutId?: string }): Promise<void>;
  /** Removes vane's annotations (owner, snapshot) once the rollout ended. */
  release(target: MeshTarget): Promise<void>;
}

/** Errors the engine branches on. */
export class MeshError extends Error {
  constructor(
    readonly code: 'NotFound' | 'Invalid' | 'Conflict' | 'Forbidden' | 'Unavailable',
    message: string,
    /** Whether a retry can fix it (Unavailable, Conflict) or not (NotFound, Invalid, Forbidden). */
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'MeshError';
  }
}
