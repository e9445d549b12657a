// biome-ignore-all lint/suspicious/noExplicitAny: list calls return untyped custom objects.
import {
  CoreV1Api,
  CustomObjectsApi,
  type Informer,
  type KubeConfig,
  type KubernetesObject,
  makeInformer,
  type ObjectCache,
} from '@kubernetes/client-node';
import { compileRoutes, type MeshObjects, type RouteTable } from './routes.ts';

/** How long a failed list or watch waits before the informer starts again. */
const RESTART_DELAY_MS = 1_000;

export interface MeshWatch {
  /** The current route table (recompiled on every change). */
  table(): RouteTable;
  /** Resolves once every informer has listed its objects once. */
  synced: Promise<void>;
  /** Called after each recompilation. */
  onChange(fn: (t: RouteTable) => void): () => void;
  /** Errors seen by the informers (the latest few), for diagnostics. */
  errors(): string[];
  stop(): Promise<void>;
}

type Kind = keyof MeshObjects;

/**
 * Follows VirtualServices, DestinationRules, Services and Pods of every namespace through the
 * Kubernetes watch API (client-node informers), as istiod does, and keeps a compiled route table.
 * A change is compiled in the same turn of the event loop it arrives in, so routing follows a
 * weight change within milliseconds.
 */
export function watchMesh(kc: KubeConfig): MeshWatch {
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const istio = (plural: string) => () =>
    custom.listClusterCustomObject({ group: 'networking.istio.io', version: 'v1', plural }) as Promise<any>;
  const sources: Record<Kind, { path: string; list: () => Promise<any> }> = {
    virtualServices: { path: '/apis/networking.istio.io/v1/virtualservices', list: istio('virtualservices') },
    destinationRules: {
      path: '/apis/networking.istio.io/v1/destinationrules',
      list: istio('destinationrules'),
    },
    services: { path: '/api/v1/services', list: () => core.listServiceForAllNamespaces() as Promise<any> },
    pods: { path: '/api/v1/pods', list: () => core.listPodForAllNamespaces() as Promise<any> },
  };

  const informers = new Map<Kind, Informer<KubernetesObject> & ObjectCache<KubernetesObject>>();
  const listeners = new Set<(t: RouteTable) => void>();
  const errors: string[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;
  let current = compileRoutes({ virtualServices: [], destinationRules: [], services: [], pods: [] });

  const recompile = () => {
    const objects = {} as MeshObjects;
    for (const k of Object.keys(sources) as Kind[]) objects[k] = [...(informers.get(k)?.list() ?? [])];
    const next = compileRoutes(objects);
    // Round-robin positions survive a recompilation, as Envoy keeps its load balancers.
    for (const [k, v] of current.cursors) next.cursors.set(k, v);
    current = next;
    for (const fn of listeners) fn(current);
  };

  // A kind is synced once a start listed it without an error (a failed list restarts the informer).
  const syncs: Promise<void>[] = [];
  for (const [kind, src] of Object.entries(sources) as [Kind, (typeof sources)[Kind]][]) {
    const inf = makeInformer<KubernetesObject>(kc, src.path, src.list);
    informers.set(kind, inf);
    for (const ev of ['add', 'update', 'delete'] as const) inf.on(ev, recompile);
    let failures = 0;
    let markSynced: () => void = () => {};
    syncs.push(
      new Promise<void>((r) => {
        markSynced = r;
      }),
    );
    const fail = (err: any) => {
      failures++;
      errors.push(`${kind}: ${err?.message ?? String(err)}`);
      errors.splice(0, Math.max(0, errors.length - 20));
      if (stopped) return;
      const t = setTimeout(() => {
        timers.delete(t);
        if (!stopped) void start();
      }, RESTART_DELAY_MS);
      timers.add(t);
    };
    const start = async () => {
      const before = failures;
      try {
        await inf.start();
      } catch (e) {
        // A watch that cannot start leaves the informer stopped without an error event.
        return fail(e);
      }
      if (failures === before) markSynced();
    };
    inf.on('error', fail);
    void start();
  }
  const synced = Promise.all(syncs).then(() => recompile());

  return {
    table: () => current,
    synced,
    onChange(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    errors: () => [...errors],
    async stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      await Promise.all([...informers.values()].map((i) => i.stop().catch(() => {})));
    },
  };
}
