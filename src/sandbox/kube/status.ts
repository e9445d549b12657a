import { qualifiedResource, type ResourceType } from './resources.ts';

export interface StatusCause {
  reason: string;
  message: string;
  field?: string;
}

export type StatusReason =
  | 'Conflict'
  | 'NotFound'
  | 'AlreadyExists'
  | 'Invalid'
  | 'Forbidden'
  | 'Unauthorized'
  | 'BadRequest'
  | 'MethodNotAllowed'
  | 'UnsupportedMediaType'
  | 'NotAcceptable'
  | 'Gone'
  | 'Expired'
  | 'TooManyRequests'
  | 'InternalError';

/** A Kubernetes Status failure, thrown by handlers and written as the response body. */
export class KubeError extends Error {
  constructor(
    readonly code: number,
    readonly reason: StatusReason,
    message: string,
    readonly details?: {
      name?: string;
      group?: string;
      kind?: string;
      causes?: StatusCause[];
      retryAfterSeconds?: number;
    },
  ) {
    super(message);
  }

  toStatus(): Record<string, unknown> {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

function detailsOf(t: ResourceType, name: string) {
  return { name, ...(t.group ? { group: t.group } : {}), kind: t.plural };
}

export function notFound(t: ResourceType, name: string): KubeError {
  return new KubeError(404, 'NotFound', `${qualifiedResource(t)} "${name}" not found`, detailsOf(t, name));
}

export function namespaceNotFound(namespace: string): KubeError {
  return new KubeError(404, 'NotFound', `namespaces "${namespace}" not found`, {
    name: namespace,
    kind: 'namespaces',
  });
}

export function alreadyExists(t: ResourceType, name: string): KubeError {
  return new KubeError(
    409,
    'AlreadyExists',
    `${qualifiedResource(t)} "${name}" already exists`,
    detailsOf(t, name),
  );
}

export function conflict(t: ResourceType, name: string): KubeError {
  return new KubeError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualifiedResource(t)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    detailsOf(t, name),
  );
}

export function invalid(t: ResourceType, name: string, causes: StatusCause[]): KubeError {
  const list = causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message));
  const summary = list.length === 1 ? list[0] : `[${list.join(', ')}]`;
  return new KubeError(422, 'Invalid', `${t.kind}.${t.group || 'core'} "${name}" is invalid: ${summary}`, {
    name,
    ...(t.group ? { group: t.group } : {}),
    kind: t.kind,
    causes,
  });
}

export function badRequest(message: string): KubeError {
  return new KubeError(400, 'BadRequest', message);
}
