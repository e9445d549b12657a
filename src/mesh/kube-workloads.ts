import { hostname } from 'node:os';
import { AppsV1Api, CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { type CallPolicy, callKube, withContext } from './kube-call.ts';
import { createKubeClients } from './kube-router.ts';

/** The old or the canary version's workload, scaled through its scale subresource. */
export interface WorkloadScaler {
  /** spec.replicas of the Deployment and whether every replica is ready (a read of the Deployment itself, no scale read). */
  readReplicas(
    namespace: string,
    name: string,
    cluster?: string,
  ): Promise<{ replicas: number; ready: boolean; message?: string }>;
  /** Sets spec.replicas with a merge patch of `deployments/scale` (the only write vane makes to workloads). */
  scale(namespace: string, name: string, replicas: number, cluster?: string): Promise<void>;
}

export function createWorkloadScaler(opts: CallPolicy & { kubeConfig: KubeConfig }): WorkloadScaler {
  const clients = createKubeClients(opts);
  const apis = new Map<string, AppsV1Api>();
  const appsOf = (cluster?: string) => {
    const key = cluster ?? '';
    let a = apis.get(key);
    if (!a) {
      a = withContext(opts.kubeConfig, cluster, () => new KubeConfig()).makeApiClient(AppsV1Api);
      apis.set(key, a);
    }
    return a;
  };
  return {
    async readReplicas(namespace, name, cluster) {
      const w = await clients.readWorkload(namespace, 'Deployment', name, cluster);
      return { replicas: w.desired, ready: w.ready, ...(w.message ? { message: w.message } : {}) };
    },
    async scale(namespace, name, replicas, cluster) {
      const apps = appsOf(cluster);
      await callKube(opts, `Deployment ${namespace}/${name} scale`, (o) =>
        apps.patchNamespacedDeploymentScale(
          { namespace, name, body: { spec: { replicas } } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch, o),
        ),
      );
    },
  };
}

/** One Kubernetes Event on a rollout's VirtualService. */
export interface KubeEventInput {
  namespace: string;
  virtualService: string;
  cluster?: string;
  reason:
    | 'Progressing'
    | 'Promoted'
    | 'RolledBack'
    | 'Paused'
    | 'Undone'
    | 'ScaleDownScheduled'
    | 'ScaledDown'
    | 'ScaledUp';
  message: string;
  warning?: boolean;
}

export interface KubeEventSink {
  /** Best effort: never throws; a failure is counted (`onOutcome`) and logged. */
  emit(e: KubeEventInput): Promise<void>;
}

/** Events of one rollout land in order; each call is bounded by `timeoutMs` (default 3 s) and is not retried. */
export function createKubeEventSink(
  opts: CallPolicy & {
    kubeConfig: KubeConfig;
    /** The VirtualService's uid, so `kubectl describe virtualservice` finds the events. */
    uidOf: (namespace: string, name: string, cluster?: string) => Promise<string | undefined>;
    onOutcome?: (outcome: 'ok' | 'error') => void;
  },
): KubeEventSink {
  const apis = new Map<string, CoreV1Api>();
  const coreOf = (cluster?: string) => {
    const key = cluster ?? '';
    let a = apis.get(key);
    if (!a) {
      a = withContext(opts.kubeConfig, cluster, () => new KubeConfig()).makeApiClient(CoreV1Api);
      apis.set(key, a);
    }
    return a;
  };
  const instance = hostname();
  let n = 0;
  const policy: CallPolicy = { ...opts, timeoutMs: opts.timeoutMs ?? 3_000, maxRetries: 0 };
  return {
    async emit(e) {
      try {
        const uid = await opts.uidOf(e.namespace, e.virtualService, e.cluster);
        const now = new Date();
        const name = `${e.virtualService}.${now.getTime().toString(16)}${(n++ % 4096).toString(16).padStart(3, '0')}`;
        await callKube(policy, `Event ${e.namespace}/${name}`, (o) =>
          coreOf(e.cluster).createNamespacedEvent(
            {
              namespace: e.namespace,
              body: {
                apiVersion: 'v1',
                kind: 'Event',
                metadata: { name, namespace: e.namespace },
                involvedObject: {
                  apiVersion: 'networking.istio.io/v1',
                  kind: 'VirtualService',
                  name: e.virtualService,
                  namespace: e.namespace,
                  ...(uid ? { uid } : {}),
                },
                reason: e.reason,
                // Kubernetes caps an event's message at 1 KB.
                message: e.message.length > 1024 ? `${e.message.slice(0, 1021)}...` : e.message,
                type: e.warning ? 'Warning' : 'Normal',
                source: { component: 'vane' },
                reportingComponent: 'vane',
                reportingInstance: instance,
                firstTimestamp: now,
                lastTimestamp: now,
                count: 1,
              },
            },
            o,
          ),
        );
        opts.onOutcome?.('ok');
      } catch (err) {
        opts.onOutcome?.('error');
        opts.logger?.warn(
          { err: (err as Error).message, reason: e.reason },
          'a Kubernetes Event could not be written',
        );
      }
    },
  };
}
