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

/** A tick lost its lease (it ran past it and another worker took the rollout): it must write nothing more. */
export class LeaseLost extends Error {
  constructor(readonly id: string) {
    super(`the lease of rollout ${id} was lost; this tick stops without writing`);
    this.name = 'LeaseLost';
  }
}
