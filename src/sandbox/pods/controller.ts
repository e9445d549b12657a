// biome-ignore-all lint/suspicious/noExplicitAny: Kubernetes objects are arbitrary JSON whose shape is checked by schemas at run time, not by types.
import type { Cluster } from './cluster.ts';
import { nameSuffix, podTemplateHash } from './names.ts';

export const HASH_LABEL = 'pod-template-hash';
const REVISION = 'deployment.kubernetes.io/revision';
const DEFAULT_HISTORY_LIMIT = 10;

const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

/** The controller owner reference of an object, if any. */
export function controllerOf(obj: any): any | undefined {
  return (obj.metadata?.ownerReferences ?? []).find((r: any) => r.controller);
}

function ownedBy(obj: any, owner: any): boolean {
  return controllerOf(obj)?.uid === owner.metadata.uid;
}

export function isPodReady(pod: any): boolean {
  return (pod.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True');
}

function ownerRef(owner: any) {
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name,
    uid: owner.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

const replicasOf = (o: any): number => (typeof o.spec?.replicas === 'number' ? o.spec.replicas : 1);
const revisionOf = (rs: any): number => Number(rs.metadata.annotations?.[REVISION] ?? 0) || 0;

/** Conditions as the controllers keep them: times move only when a condition changes. */
function condition(old: any[] | undefined, type: string, status: string, reason: string, message: string) {
  const prev = (old ?? []).find((c) => c.type === type);
  const same = prev && prev.status === status && prev.reason === reason && prev.message === message;
  return {
    type,
    status,
    ...(prev && same ? { lastUpdateTime: prev.lastUpdateTime } : { lastUpdateTime: now() }),
    lastTransitionTime: prev && prev.status === status ? prev.lastTransitionTime : now(),
    reason,
    message,
  };
}

/** Writes the status when it differs (the API drops no-op writes, but building the object costs). */
function writeStatus(cluster: Cluster, obj: any, status: any): void {
  if (JSON.stringify(obj.status ?? {}) === JSON.stringify(status)) return;
  cluster.updateStatus({ ...structuredClone(obj), status });
}

/**
 * One pass of the Deployment and ReplicaSet controllers over the whole simulator: garbage
 * collection of orphans, Deployments → ReplicaSets (one per template hash; a new template gets a
 * new ReplicaSet at full size, the old ones go to 0 once it is ready) → Pod objects, and the
 * status of both. Level-triggered: it reads everything it needs from the cluster each time.
 */
export function reconcileWorkloads(cluster: Cluster, maxPodObjects = Number.POSITIVE_INFINITY): void {
  collectGarbage(cluster);
  for (const d of cluster.list('Deployment')) reconcileDeployment(cluster, d);
  const quota = { left: maxPodObjects - cluster.list('Pod').length, max: maxPodObjects };
  for (const rs of cluster.list('ReplicaSet')) reconcileReplicaSet(cluster, rs, quota);
  for (const d of cluster.list('Deployment')) deploymentStatus(cluster, d);
}

/** ReplicaSets and Pods whose controller no longer exists go, as the garbage collector does with background deletion. */
function collectGarbage(cluster: Cluster): void {
  for (const kind of ['ReplicaSet', 'Pod'] as const)
    for (const o of cluster.list(kind)) {
      const ref = controllerOf(o);
      if (!ref || (ref.kind !== 'Deployment' && ref.kind !== 'ReplicaSet')) continue;
      const owner = cluster.get(ref.kind, o.metadata.namespace, ref.name);
      if (!owner || owner.metadata.uid !== ref.uid)
        cluster.delete(kind, o.metadata.namespace, o.metadata.name);
    }
}

/** Annotations that steer the demo app; on the Deployment itself they override the template's. */
const SANDBOX_ANNOTATION = /^sandbox\.vane\.dev\//;

/**
 * The pod template the Deployment's pods run: its template, with the Deployment's own
 * `sandbox.vane.dev/*` annotations laid over the template's, so `kubectl annotate deployment`
 * rolls the pods like a template change does.
 */
export function effectiveTemplate(d: any): any {
  const template = structuredClone(d.spec?.template ?? {});
  const own = Object.entries(d.metadata.annotations ?? {}).filter(([k]) => SANDBOX_ANNOTATION.test(k));
  if (own.length)
    template.metadata = {
      ...template.metadata,
      annotations: { ...template.metadata?.annotations, ...Object.fromEntries(own) },
    };
  return template;
}

function reconcileDeployment(cluster: Cluster, d: any): void {
  const ns = d.metadata.namespace;
  const template = effectiveTemplate(d);
  const hash = podTemplateHash(template);
  const desired = replicasOf(d);
  const owned = cluster.list('ReplicaSet', ns).filter((rs) => ownedBy(rs, d));
  const maxRevision = Math.max(0, ...owned.map(revisionOf));
  let current = owned.find((rs) => rs.metadata.labels?.[HASH_LABEL] === hash);
  const matchLabels = { ...(d.spec?.selector?.matchLabels ?? template.metadata?.labels ?? {}) };
  if (!current) {
    current = cluster.create({
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: `${d.metadata.name}-${hash}`,
        namespace: ns,
        labels: { ...(template.metadata?.labels ?? {}), [HASH_LABEL]: hash },
        annotations: { [REVISION]: String(maxRevision + 1) },
        ownerReferences: [ownerRef(d)],
      },
      spec: {
        replicas: desired,
        selector: { ...d.spec?.selector, matchLabels: { ...matchLabels, [HASH_LABEL]: hash } },
        template: {
          ...structuredClone(template),
          metadata: {
            ...structuredClone(template.metadata ?? {}),
            labels: { ...(template.metadata?.labels ?? {}), [HASH_LABEL]: hash },
          },
        },
      },
    });
  } else {
    const revision = revisionOf(current) < maxRevision ? maxRevision + 1 : revisionOf(current);
    if (replicasOf(current) !== desired || revision !== revisionOf(current))
      current = cluster.update({
        ...structuredClone(current),
        metadata: {
          ...structuredClone(current.metadata),
          annotations: { ...current.metadata.annotations, [REVISION]: String(revision) },
        },
        spec: { ...structuredClone(current.spec), replicas: desired },
      });
  }
  // The new ReplicaSet surges to full size; the old ones are emptied once it is all ready.
  const readyNew = cluster.list('Pod', ns).filter((p) => ownedBy(p, current) && isPodReady(p)).length;
  const old = owned.filter((rs) => rs.metadata.uid !== current.metadata.uid);
  if (readyNew >= desired)
    for (const rs of old)
      if (replicasOf(rs) !== 0) cluster.update({ ...structuredClone(rs), spec: { ...rs.spec, replicas: 0 } });
  const limit = d.spec?.revisionHistoryLimit ?? DEFAULT_HISTORY_LIMIT;
  const emptied = old.filter((rs) => replicasOf(rs) === 0).sort((a, b) => revisionOf(a) - revisionOf(b));
  for (const rs of emptied.slice(0, Math.max(0, emptied.length - limit)))
    cluster.delete('ReplicaSet', ns, rs.metadata.name);
}

function reconcileReplicaSet(cluster: Cluster, rs: any, quota: { left: number; max: number }): void {
  const ns = rs.metadata.namespace;
  const pods = cluster.list('Pod', ns).filter((p) => ownedBy(p, rs));
  const desired = replicasOf(rs);
  let refused = false;
  for (let i = pods.length; i < desired; i++) {
    // As a resource quota does: the create fails and the ReplicaSet says so.
    if (quota.left <= 0) {
      refused = true;
      break;
    }
    quota.left--;
    pods.push(createPod(cluster, rs));
  }
  if (pods.length > desired) {
    // Not-ready pods go first, then the newest, as the ReplicaSet controller ranks them.
    const ranked = [...pods].sort(
      (a, b) =>
        Number(isPodReady(a)) - Number(isPodReady(b)) ||
        (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? '') ||
        Number(b.metadata.resourceVersion) - Number(a.metadata.resourceVersion),
    );
    for (const p of ranked.slice(0, pods.length - desired)) {
      cluster.delete('Pod', ns, p.metadata.name);
      pods.splice(pods.indexOf(p), 1);
    }
  }
  const ready = pods.filter(isPodReady).length;
  const failure = (rs.status?.conditions ?? []).find((c: any) => c.type === 'ReplicaFailure');
  writeStatus(cluster, rs, {
    replicas: pods.length,
    fullyLabeledReplicas: pods.length,
    readyReplicas: ready,
    availableReplicas: ready,
    observedGeneration: rs.metadata.generation ?? 1,
    ...(refused
      ? {
          conditions: [
            {
              type: 'ReplicaFailure',
              status: 'True',
              lastTransitionTime: failure?.lastTransitionTime ?? now(),
              reason: 'FailedCreate',
              message: `the sandbox holds at most ${quota.max} pods (10 × startKubeSimulator option pods.maxPods); scale something down`,
            },
          ],
        }
      : {}),
  });
}

function createPod(cluster: Cluster, rs: any): any {
  const ns = rs.metadata.namespace;
  const template = rs.spec?.template ?? {};
  let name = `${rs.metadata.name}-${nameSuffix()}`;
  while (cluster.get('Pod', ns, name)) name = `${rs.metadata.name}-${nameSuffix()}`;
  const spec = structuredClone(template.spec ?? {});
  return cluster.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      generateName: `${rs.metadata.name}-`,
      namespace: ns,
      labels: { ...(template.metadata?.labels ?? {}) },
      ...(template.metadata?.annotations ? { annotations: { ...template.metadata.annotations } } : {}),
      ownerReferences: [ownerRef(rs)],
    },
    spec: {
      ...spec,
      restartPolicy: spec.restartPolicy ?? 'Always',
      serviceAccountName: spec.serviceAccountName ?? 'default',
      nodeName: 'sandbox',
    },
    status: {
      phase: 'Pending',
      conditions: [{ type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: now() }],
      qosClass: 'BestEffort',
    },
  });
}

function deploymentStatus(cluster: Cluster, d: any): void {
  const ns = d.metadata.namespace;
  const desired = replicasOf(d);
  const hash = podTemplateHash(effectiveTemplate(d));
  const rsets = cluster.list('ReplicaSet', ns).filter((rs) => ownedBy(rs, d));
  const current = rsets.find((rs) => rs.metadata.labels?.[HASH_LABEL] === hash);
  const pods = cluster.list('Pod', ns).filter((p) => rsets.some((rs) => ownedBy(p, rs)));
  const updated = current ? pods.filter((p) => ownedBy(p, current)) : [];
  const ready = pods.filter(isPodReady).length;
  const updatedReady = updated.filter(isPodReady).length;
  // maxUnavailable defaults to 25% (rounded down) of the desired replicas.
  const minAvailable = desired - Math.floor(desired / 4);
  const complete = updated.length === desired && pods.length === desired && updatedReady === desired;
  const old = d.status?.conditions;
  const rsName = current?.metadata.name ?? `${d.metadata.name}-${hash}`;
  writeStatus(cluster, d, {
    observedGeneration: d.metadata.generation ?? 1,
    replicas: pods.length,
    updatedReplicas: updated.length,
    readyReplicas: ready,
    availableReplicas: ready,
    ...(desired - ready > 0 ? { unavailableReplicas: desired - ready } : {}),
    conditions: [
      ready >= minAvailable
        ? condition(
            old,
            'Available',
            'True',
            'MinimumReplicasAvailable',
            'Deployment has minimum availability.',
          )
        : condition(
            old,
            'Available',
            'False',
            'MinimumReplicasUnavailable',
            'Deployment does not have minimum availability.',
          ),
      complete
        ? condition(
            old,
            'Progressing',
            'True',
            'NewReplicaSetAvailable',
            `ReplicaSet "${rsName}" has successfully progressed.`,
          )
        : condition(
            old,
            'Progressing',
            'True',
            'ReplicaSetUpdated',
            `ReplicaSet "${rsName}" is progressing.`,
          ),
    ],
  });
}
