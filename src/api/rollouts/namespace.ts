import type { DomainContext } from '../../rollouts/context.ts';
import type { NamespaceOf } from '../auth/require-scope.ts';

/** The namespace of the rollout named by the `id` path parameter (read only for tokens limited to namespaces). */
export function rolloutNamespace(ctx: DomainContext): NamespaceOf {
  return async (c) => {
    const id = c.req.param('id');
    if (!id) return undefined;
    return (await ctx.store.get(id))?.spec.target.namespace;
  };
}
