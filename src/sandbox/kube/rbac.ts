// biome-ignore-all lint/suspicious/noExplicitAny: RBAC objects are parsed YAML whose shape is checked here at run time.
import type { IncomingHttpHeaders } from 'node:http';
import { parseAllDocuments } from 'yaml';
import { qualifiedResource, type ResourceType } from './resources.ts';
import { KubeError } from './status.ts';

/**
 * Kubernetes RBAC, as the API server's authorizer applies it, over roles and bindings loaded from
 * YAML (vane's rendered manifests): a request is allowed when a rule of a role bound to its user
 * (or one of the user's groups) names its API group, resource and verb; otherwise 403 Forbidden.
 * Every allowed request is recorded against the rule grants that allowed it, so a test can list
 * the grants nobody used.
 */

export interface RbacOptions {
  /** YAML (several documents): its ClusterRoles, ClusterRoleBindings, Roles and RoleBindings are the policy; other kinds are skipped. */
  yaml: string;
  /** Bearer token → the user it authenticates as, e.g. `{ abc: 'system:serviceaccount:vane-system:vane' }`. Another token is 401. */
  users: Record<string, string>;
  /** Users allowed everything, as members of system:masters are. A request without a token is `system:anonymous`. Default none. */
  admins?: string[];
}

interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames: string[];
}

interface Role {
  kind: 'ClusterRole' | 'Role';
  namespace?: string;
  name: string;
  rules: PolicyRule[];
}

interface Binding {
  kind: 'ClusterRoleBinding' | 'RoleBinding';
  namespace?: string;
  name: string;
  roleRef: { kind: string; name: string };
  subjects: { kind: string; name: string; namespace?: string }[];
}

/** One verb on one resource of one API group, granted by a role's rule: the unit of "used". */
export interface RbacGrant {
  role: string;
  apiGroup: string;
  resource: string;
  verb: string;
}

export interface RbacUsage {
  /** Grants (of roles bound to the users of `users`) with the number of requests each allowed. */
  grants: (RbacGrant & { requests: number })[];
  /** Requests refused with 403: who asked for what. */
  denied: { user: string; verb: string; resource: string; namespace?: string; name?: string }[];
}

export const ANONYMOUS = 'system:anonymous';

const strings = (v: unknown, what: string): string[] => {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string'))
    throw new Error(`RBAC policy: ${what} must be a list of strings`);
  return v;
};

export function grantName(g: RbacGrant): string {
  return `${g.role}: ${g.verb} ${g.apiGroup ? `${g.resource}.${g.apiGroup}` : g.resource}`;
}

export class Rbac {
  private readonly roles: Role[] = [];
  private readonly bindings: Binding[] = [];
  private readonly counts = new Map<string, number>();
  private readonly denied: RbacUsage['denied'] = [];

  constructor(private readonly opts: RbacOptions) {
    for (const doc of parseAllDocuments(opts.yaml)) {
      if (doc.errors.length) throw new Error(`RBAC policy: ${doc.errors[0]!.message}`);
      const o = doc.toJS() as any;
      if (!o || typeof o !== 'object') continue;
      const where = `${o.kind} ${o.metadata?.name}`;
      if (o.kind === 'ClusterRole' || o.kind === 'Role') {
        if (o.aggregationRule)
          throw new Error(`RBAC policy: ${where} aggregates other roles; the simulator does not`);
        this.roles.push({
          kind: o.kind,
          name: String(o.metadata?.name),
          ...(o.kind === 'Role' ? { namespace: o.metadata?.namespace ?? 'default' } : {}),
          rules: (o.rules ?? []).map((r: any, i: number) => ({
            apiGroups: strings(r.apiGroups, `${where} rules[${i}].apiGroups`),
            resources: strings(r.resources, `${where} rules[${i}].resources`),
            verbs: strings(r.verbs, `${where} rules[${i}].verbs`),
            resourceNames: strings(r.resourceNames, `${where} rules[${i}].resourceNames`),
          })),
        });
      } else if (o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding') {
        if (!o.roleRef?.kind || !o.roleRef?.name) throw new Error(`RBAC policy: ${where} has no roleRef`);
        this.bindings.push({
          kind: o.kind,
          name: String(o.metadata?.name),
          ...(o.kind === 'RoleBinding' ? { namespace: o.metadata?.namespace ?? 'default' } : {}),
          roleRef: o.roleRef,
          subjects: o.subjects ?? [],
        });
      }
    }
  }

  /** The user of a request: the token's user, `system:anonymous` without a token; 401 for a token not known. */
  authenticate(headers: IncomingHttpHeaders): string {
    const h = headers.authorization;
    if (!h) return ANONYMOUS;
    const m = /^Bearer (.+)$/.exec(h);
    const user = m ? this.opts.users[m[1]!] : undefined;
    if (!user) throw new KubeError(401, 'Unauthorized', 'Unauthorized');
    return user;
  }

  private groupsOf(user: string): string[] {
    const sa = /^system:serviceaccount:([^:]+):/.exec(user);
    return [
      ...(user === ANONYMOUS ? ['system:unauthenticated'] : ['system:authenticated']),
      ...(sa ? ['system:serviceaccounts', `system:serviceaccounts:${sa[1]}`] : []),
    ];
  }

  private binds(b: Binding, user: string): boolean {
    const groups = this.groupsOf(user);
    return b.subjects.some((s) => {
      if (s.kind === 'User') return s.name === user;
      if (s.kind === 'Group') return groups.includes(s.name);
      if (s.kind === 'ServiceAccount')
        return user === `system:serviceaccount:${s.namespace ?? b.namespace}:${s.name}`;
      return false;
    });
  }

  /** The roles that apply to `user` for a request in `namespace` (undefined: cluster scope). */
  private rolesFor(user: string, namespace: string | undefined): Role[] {
    const out: Role[] = [];
    for (const b of this.bindings) {
      if (!this.binds(b, user)) continue;
      if (b.kind === 'RoleBinding' && b.namespace !== namespace) continue;
      const role = this.roles.find(
        (r) =>
          r.kind === b.roleRef.kind &&
          r.name === b.roleRef.name &&
          (r.kind === 'ClusterRole' || r.namespace === b.namespace),
      );
      if (role) out.push(role);
    }
    return out;
  }

  private static matches(r: PolicyRule, verb: string, group: string, resource: string, name?: string) {
    const has = (list: string[], v: string) => list.includes('*') || list.includes(v);
    return (
      has(r.verbs, verb) &&
      has(r.apiGroups, group) &&
      has(r.resources, resource) &&
      (r.resourceNames.length === 0 || (name !== undefined && r.resourceNames.includes(name)))
    );
  }

  authorize(
    user: string,
    verb: string,
    t: ResourceType,
    namespace: string | undefined,
    name: string | undefined,
    subresource?: string,
  ): void {
    if (this.opts.admins?.includes(user)) return;
    const resource = subresource ? `${t.plural}/${subresource}` : t.plural;
    for (const role of this.rolesFor(user, namespace))
      for (const r of role.rules)
        if (Rbac.matches(r, verb, t.group, resource, name)) {
          const g = {
            role: `${role.kind} ${role.name}`,
            apiGroup: r.apiGroups.includes('*') ? '*' : t.group,
            resource: r.resources.includes('*') ? '*' : resource,
            verb: r.verbs.includes('*') ? '*' : verb,
          };
          const key = grantName(g);
          this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
          return;
        }
    this.denied.push({
      user,
      verb,
      resource: qualifiedResource(t),
      ...(namespace ? { namespace } : {}),
      ...(name ? { name } : {}),
    });
    const what = `${qualifiedResource(t)}${name ? ` "${name}"` : ''}`;
    const scope = namespace ? ` in the namespace "${namespace}"` : ' at the cluster scope';
    throw new KubeError(
      403,
      'Forbidden',
      `${what} is forbidden: User "${user}" cannot ${verb} resource "${resource}" in API group "${t.group}"${scope}`,
      { ...(name ? { name } : {}), ...(t.group ? { group: t.group } : {}), kind: t.plural },
    );
  }

  /** Every grant of the roles bound to the users of the tokens, with how many requests it allowed. */
  usage(): RbacUsage {
    const users = new Set(Object.values(this.opts.users));
    const grants: RbacUsage['grants'] = [];
    const seen = new Set<string>();
    for (const b of this.bindings) {
      if (![...users].some((u) => this.binds(b, u))) continue;
      const role = this.roles.find((r) => r.kind === b.roleRef.kind && r.name === b.roleRef.name);
      if (!role) continue;
      for (const r of role.rules)
        for (const apiGroup of r.apiGroups)
          for (const resource of r.resources)
            for (const verb of r.verbs) {
              const g = { role: `${role.kind} ${role.name}`, apiGroup, resource, verb };
              const key = grantName(g);
              if (seen.has(key)) continue;
              seen.add(key);
              grants.push({ ...g, requests: this.counts.get(key) ?? 0 });
            }
    }
    return { grants, denied: structuredClone(this.denied) };
  }
}
