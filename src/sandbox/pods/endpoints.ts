// biome-ignore-all lint/suspicious/noExplicitAny: Kubernetes objects are arbitrary JSON whose shape is checked by schemas at run time, not by types.
import { isPodReady } from './controller.ts';
import { PORT_ANNOTATION } from './kubelet.ts';

/** One ready pod behind a Service: dial `ip:port`. */
export interface Endpoint {
  pod: string;
  namespace: string;
  ip: string;
  port: number;
  labels: Record<string, string>;
}

/** What endpointsOf reads: the simulator (`KubeSimulator.listObjects`) or anything listing the same way. */
export interface ObjectLister {
  listObjects(apiVersion: string, kind: string, namespace?: string): any[];
}

/**
 * The endpoints of a Service among `pods`: pods of its namespace whose labels include every label
 * of its selector, Ready, with the demo app's port annotation. A Service without a selector
 * selects nothing, as in Kubernetes (its endpoints would be managed by hand).
 */
export function selectEndpoints(service: any, pods: any[]): Endpoint[] {
  const selector: Record<string, string> = service.spec?.selector ?? {};
  const keys = Object.keys(selector);
  if (!keys.length) return [];
  const out: Endpoint[] = [];
  for (const p of pods) {
    if (p.metadata.namespace !== service.metadata.namespace) continue;
    const labels = p.metadata.labels ?? {};
    if (!keys.every((k) => labels[k] === selector[k])) continue;
    const port = Number(p.metadata.annotations?.[PORT_ANNOTATION]);
    if (!isPodReady(p) || !p.status?.podIP || !Number.isInteger(port) || port <= 0) continue;
    out.push({ pod: p.metadata.name, namespace: p.metadata.namespace, ip: p.status.podIP, port, labels });
  }
  return out.sort((a, b) => (a.pod < b.pod ? -1 : a.pod > b.pod ? 1 : 0));
}

/** The ready endpoints of Service `namespace/service`; undefined when there is no such Service. */
export function endpointsOf(
  source: ObjectLister,
  namespace: string,
  service: string,
): Endpoint[] | undefined {
  const svc = source.listObjects('v1', 'Service', namespace).find((s) => s.metadata.name === service);
  if (!svc) return undefined;
  return selectEndpoints(svc, source.listObjects('v1', 'Pod', namespace));
}
