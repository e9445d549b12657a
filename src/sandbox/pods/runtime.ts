import type { ObjectApi } from '../kube/api.ts';
import { clusterOf } from './cluster.ts';
import { reconcileWorkloads } from './controller.ts';
import { Kubelet, type RunningPod } from './kubelet.ts';

export interface PodRuntimeOptions {
  /**
   * At most this many demo apps run at once; further Pods stay Pending (Unschedulable), and
   * ReplicaSets create no more than 10 × this many Pod objects in all (ReplicaFailure). Default 100.
   */
  maxPods?: number;
}

export interface PodRuntime {
  /** The demo apps running now (a Pod whose app is starting has no port yet). */
  running(): RunningPod[];
  /** Ends the demo app of Pod `namespace/name` as a crash would (false when none runs); it restarts after a second. */
  crash(namespace: string, name: string): Promise<boolean>;
  /** Stops every demo app and stops reconciling. */
  close(): Promise<void>;
}

const KINDS = new Set(['Deployment', 'ReplicaSet', 'Pod', 'Namespace']);
const DEFAULT_MAX_PODS = 100;
/** Pod objects the controllers create at most, per demo app allowed to run (the rest stay Pending). */
const POD_OBJECTS_PER_RUNNING = 10;

/**
 * The simulator's controllers and node: a reconcile pass (Deployments → ReplicaSets → Pods →
 * demo apps, and their status) runs after every change to the store, so kubectl sees a cluster
 * that acts on what it applies.
 */
/** The options with their defaults, or an error naming the bad one (checked before anything starts). */
export function checkPodRuntimeOptions(opts: PodRuntimeOptions): Required<PodRuntimeOptions> {
  const unknown = Object.keys(opts).filter((k) => k !== 'maxPods');
  if (unknown.length)
    throw new Error(
      `pods: unknown option ${unknown.map((k) => `'${k}'`).join(', ')}; the one option is maxPods`,
    );
  const maxPods = opts.maxPods ?? DEFAULT_MAX_PODS;
  if (!Number.isInteger(maxPods) || maxPods < 1 || maxPods > 10_000)
    throw new Error(`pods.maxPods must be an integer from 1 to 10000, not ${maxPods}`);
  return { maxPods };
}

export function startPodRuntime(
  api: ObjectApi,
  opts: PodRuntimeOptions & { log?: (m: string) => void } = {},
): PodRuntime {
  const { log: givenLog, ...rest } = opts;
  const { maxPods } = checkPodRuntimeOptions(rest);
  const log = givenLog ?? ((m: string) => console.warn(m));
  const cluster = clusterOf(api);
  let scheduled: NodeJS.Immediate | undefined;
  let closed = false;
  let busy = 0;
  const schedule = () => {
    if (!closed && !scheduled) scheduled = setImmediate(pass);
  };
  const kubelet = new Kubelet(cluster, schedule, maxPods, log);
  function pass() {
    scheduled = undefined;
    if (closed) return;
    const before = api.store.resourceVersion;
    try {
      reconcileWorkloads(cluster, maxPods * POD_OBJECTS_PER_RUNNING);
      kubelet.sync();
    } catch (e) {
      log(`pod runtime: reconcile failed: ${(e as Error).stack ?? e}`);
    }
    busy = api.store.resourceVersion === before ? 0 : busy + 1;
    // A pass that keeps writing far longer than pods take to come up is a bug, not a cluster converging.
    if (busy >= 1_000 + 10 * maxPods) {
      log(`pod runtime: ${busy} reconcile passes in a row changed objects; stopping (a controller bug)`);
      closed = true;
    }
  }
  // Every watch event of the store triggers a pass; the pass's own writes trigger the next one,
  // until nothing changes.
  const unsubscribe = api.store.subscribe((e) => {
    if (KINDS.has(e.resourceType.kind)) schedule();
  });
  schedule();
  return {
    running: () => kubelet.running(),
    crash: (namespace, name) => kubelet.crash(namespace, name),
    async close() {
      closed = true;
      unsubscribe();
      if (scheduled) clearImmediate(scheduled);
      scheduled = undefined;
      await kubelet.close();
    },
  };
}
