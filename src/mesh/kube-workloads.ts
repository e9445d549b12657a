import { hostname } from 'node:os';
import {
  AppsV1Api,
  CoreV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { type CallPolicy, callKube } from './kube-call.ts';
import { clientsPerCluster, KubeConnections } from './kube-connections.ts';
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

export function createWorkloadScaler(
  opts: CallPolicy & { kubeConfig: KubeConfig; connections?: KubeConnections },
): WorkloadScaler {
  const connections = opts.connections ?? new KubeConnections();
  const clients = createKubeClients({ ...opts, connections });
  const appsOf = clientsPerCluster(opts.kubeConfig, connections, opts as CallPolicy, (kc) =>
    kc.makeApiClient(AppsV1Api),
  );
  return {
    async readReplicas(namespace, name, cluster) {
      const w = await clients.readWorkload(namespace, 'Deployment', name, cluster);
      return { replicas: w.desired, ready: w.ready, ...(w.message ? { message: w.message } : {}) };
    },
    async scale(namespace, name, replicas, cluster) {
      const { api: apps, opts: policy } = appsOf(cluster);
      await callKube(policy, `Deployment ${namespace}/${name} scale`, (o) =>
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
    connections?: KubeConnections;
    /** The VirtualService's uid, so `kubectl describe virtualservice` finds the events. */
    uidOf: (namespace: string, name: string, cluster?: string) => Promise<string | undefined>;
    onOutcome?: (outcome: 'ok' | 'error') => void;
  },
): KubeEventSink {
  const instance = hostname();
  let n = 0;
  const policy: CallPolicy = { ...opts, timeoutMs: opts.timeoutMs ?? 3_000, maxRetries: 0 };
  const coreOf = clientsPerCluster(opts.kubeConfig, opts.connections ?? new KubeConnections(), policy, (kc) =>
    kc.makeApiClient(CoreV1Api),
  );
  return {
    async emit(e) {
      try {
        const uid = await opts.uidOf(e.namespace, e.virtualService, e.cluster);
        const now = new Date();
        const name = `${e.virtualService}.${now.getTime().toString(16)}${(n++ % 4096).toString(16).padStart(3, '0')}`;
        const core = coreOf(e.cluster);
        await callKube(core.opts, `Event ${e.namespace}/${name}`, (o) =>
          core.api.createNamespacedEvent(
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
