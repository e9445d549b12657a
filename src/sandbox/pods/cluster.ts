// biome-ignore-all lint/suspicious/noExplicitAny: Kubernetes objects are arbitrary JSON whose shape is checked by schemas at run time, not by types.
import type { ObjectApi } from '../kube/api.ts';
import { RESOURCE_TYPES, type ResourceType } from '../kube/resources.ts';

export type RuntimeKind = 'Deployment' | 'ReplicaSet' | 'Pod' | 'Service';

/** What the controllers read and write: the simulator's objects, as its own API does it (validated, versioned, watched). */
export interface Cluster {
  list(kind: RuntimeKind, namespace?: string): any[];
  get(kind: RuntimeKind, namespace: string, name: string): any | undefined;
  create(obj: any): any;
  /** Replaces the object (spec and metadata; status too for types without a status subresource). */
  update(obj: any): any;
  /** Writes only the status, through the status subresource where the type has one. */
  updateStatus(obj: any): any;
  delete(kind: RuntimeKind, namespace: string, name: string): void;
}

function typeOf(kind: RuntimeKind): ResourceType {
  const t = RESOURCE_TYPES.find((r) => r.kind === kind && (r.group === '' || r.group === 'apps'));
  if (!t) throw new Error(`the kube simulator serves no ${kind}; the pod runtime needs it`);
  return t;
}

/** The simulator's direct access: unlogged, without auth or faults, still validated and watched. */
export function clusterOf(api: ObjectApi): Cluster {
  const target = (obj: any) => {
    const t = typeOf(obj.kind);
    return { t, version: t.storageVersion, namespace: obj.metadata.namespace, name: obj.metadata.name };
  };
  return {
    list: (kind, namespace) => api.store.list(typeOf(kind), namespace),
    get: (kind, namespace, name) => api.store.get(typeOf(kind), namespace, name),
    create: (obj) => api.create({ ...target(obj), name: undefined }, obj, {}, false),
    update: (obj) => api.update(target(obj), obj, {}, false),
    updateStatus(obj) {
      const x = target(obj);
      return api.update(x.t.statusSubresource ? { ...x, subresource: 'status' } : x, obj, {}, false);
    },
    delete(kind, namespace, name) {
      // Straight to the store: the write log records what clients wrote, not the controllers.
      api.store.delete(typeOf(kind), namespace, name);
    },
  };
}
