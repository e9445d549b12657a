/** Annotations vane puts on the user's VirtualService and DestinationRule while a rollout holds them. */
export const ANNOTATIONS = {
  /** The id of the rollout that holds the object. */
  rollout: 'vane.dev/rollout',
  /** The object's spec as JSON before the rollout touched it, for restore. */
  originalSpec: 'vane.dev/original-spec',
  /** On the DestinationRule: the name of the subset vane created (removed again on rollback). */
  createdSubset: 'vane.dev/created-subset',
  /** On the DestinationRule: each subset as vane last wrote it (null: removed), so rollback reverts only what is still vane's. */
  writtenSubsets: 'vane.dev/written-subsets',
  /** On the VirtualService: the name of vane's A/B route, so only that route is ever removed. */
  experimentRoute: 'vane.dev/experiment-route',
} as const;
