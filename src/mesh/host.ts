/**
 * Host names compared the way Istio resolves them inside a VirtualService or DestinationRule:
 * a short name is relative to the object's namespace, so `reviews`, `reviews.bookinfo`,
 * `reviews.bookinfo.svc` and `reviews.bookinfo.svc.cluster.local` are one service when the object
 * lives in `bookinfo`. Other names (external hosts, wildcards) compare as written, case-insensitively.
 */

const CLUSTER_SUFFIX = 'svc.cluster.local';

/** The fully qualified name of `host` as seen from an object in `namespace`. */
export function qualifyHost(host: string, namespace: string): string {
  const h = host.trim().toLowerCase().replace(/\.$/, '');
  if (h.includes('*')) return h;
  const parts = h.split('.');
  if (parts.length === 1) return `${h}.${namespace}.${CLUSTER_SUFFIX}`;
  if (parts.length === 2) return `${h}.${CLUSTER_SUFFIX}`;
  if (parts.length === 3 && parts[2] === 'svc') return `${h}.cluster.local`;
  return h;
}

/** Whether two host names written in objects of `namespace` (or each its own namespace) name the same service. */
export function sameHost(a: string, b: string, namespace: string, namespaceOfB: string = namespace): boolean {
  return qualifyHost(a, namespace) === qualifyHost(b, namespaceOfB);
}
