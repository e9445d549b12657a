import { z } from '@hono/zod-openapi';

/**
 * The closed table of error codes: each maps to its HTTP status and a description. The error
 * envelope, the OpenAPI error responses and the mapping of domain errors are all generated from it.
 */
export const ERROR_CODES = {
  BAD_REQUEST: { status: 400, description: 'The request is malformed or a field is invalid.' },
  UNAUTHORIZED: { status: 401, description: 'No valid API token was given.' },
  FORBIDDEN: { status: 403, description: 'The token may not do this.' },
  NOT_FOUND: { status: 404, description: 'The resource does not exist.' },
  CONFLICT: { status: 409, description: 'The resource is in a state that does not allow this.' },
  TARGET_BUSY: { status: 409, description: 'Another rollout is active on the same target.' },
  PAYLOAD_TOO_LARGE: { status: 413, description: 'The request body is larger than 1 MB.' },
  UNPROCESSABLE: { status: 422, description: 'The request is well formed but cannot be carried out.' },
  RATE_LIMITED: { status: 429, description: 'Too many requests.' },
  INTERNAL: { status: 500, description: 'An unexpected error; the request id finds it in the logs.' },
  UNAVAILABLE: {
    status: 503,
    description: 'A dependency vane needs is not answering; retry after Retry-After.',
  },
  TIMEOUT: { status: 504, description: 'The request took longer than the request timeout.' },
} as const satisfies Record<string, { status: number; description: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export const ErrorEnvelopeSchema = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]),
      message: z.string(),
      requestId: z.string(),
      details: z.unknown().optional(),
    }),
  })
  .openapi('Error');

export type ErrorEnvelope = z.infer<typeof ErrorEnvelopeSchema>;

/** An error a route or a domain verb throws to answer with a given code. */
export class ApiError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    /** Extra response headers, e.g. Retry-After. */
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'ApiError';
  }
  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

export function envelope(
  code: ErrorCode,
  message: string,
  requestId: string,
  details?: unknown,
): ErrorEnvelope {
  return { error: { code, message, requestId, ...(details === undefined ? {} : { details }) } };
}

/** OpenAPI responses for the given codes, for a route's `responses`. */
export function errorResponses(...codes: ErrorCode[]) {
  const out: Record<
    number,
    { description: string; content: { 'application/json': { schema: typeof ErrorEnvelopeSchema } } }
  > = {};
  for (const code of codes) {
    const { status, description } = ERROR_CODES[code];
    const prev = out[status];
    out[status] = {
      description: prev ? `${prev.description} ${description}` : description,
      content: { 'application/json': { schema: ErrorEnvelopeSchema } },
    };
  }
  return out;
}

/** Whether an error means Redis is not reachable (refused, closed, timed out): a 503, never a 500. */
export function isRedisUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'MaxRetriesPerRequestError') return true;
  return /Connection is closed|Command timed out|Reached the max retries|Stream isn't writeable|enableOfflineQueue|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|connect ETIMEDOUT/.test(
    err.message,
  );
}
