import type { IncomingHttpHeaders } from 'node:http';
import { qualifiedResource, type ResourceType } from './resources.ts';
import { KubeError } from './status.ts';

export interface AllowRule {
  verb: string;
  resource: string;
  namespace?: string;
}

export interface AuthOptions {
  /** When set, requests must carry `Authorization: Bearer <token>`; otherwise any bearer token (or none) passes. */
  token?: string;
  /** When set, only these verb/resource(/namespace) combinations are allowed, like an RBAC-limited ServiceAccount. */
  allow?: AllowRule[];
}

const USER = 'system:serviceaccount:vane:vane';

export function authenticate(opts: AuthOptions, headers: IncomingHttpHeaders): void {
  if (!opts.token) return;
  const h = headers.authorization ?? '';
  if (h !== `Bearer ${opts.token}`) throw new KubeError(401, 'Unauthorized', 'Unauthorized');
}

export function authorize(
  opts: AuthOptions,
  verb: string,
  t: ResourceType,
  namespace: string | undefined,
  name: string | undefined,
): void {
  if (!opts.allow) return;
  const ok = opts.allow.some(
    (r) =>
      (r.verb === '*' || r.verb === verb) &&
      (r.resource === '*' || r.resource === t.plural) &&
      (r.namespace === undefined || r.namespace === '*' || r.namespace === namespace),
  );
  if (ok) return;
  const what = `${qualifiedResource(t)}${name ? ` "${name}"` : ''}`;
  const scope = namespace ? ` in the namespace "${namespace}"` : ' at the cluster scope';
  throw new KubeError(
    403,
    'Forbidden',
    `${what} is forbidden: User "${USER}" cannot ${verb} resource "${t.plural}" in API group "${t.group}"${scope}`,
    { ...(name ? { name } : {}), ...(t.group ? { group: t.group } : {}), kind: t.plural },
  );
}
