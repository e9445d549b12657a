/** Typed errors of the domain verbs; the API maps each to its envelope code. */
export class RolloutError extends Error {
  constructor(
    readonly code: 'NOT_FOUND' | 'TARGET_BUSY' | 'BAD_REQUEST' | 'CONFLICT' | 'UNPROCESSABLE',
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'RolloutError';
  }
}

/** A compare-and-set lost to a concurrent writer; re-read and decide again. */
export class VersionConflict extends Error {
  constructor(readonly id: string) {
    super(`rollout ${id} was changed concurrently`);
    this.name = 'VersionConflict';
  }
}
