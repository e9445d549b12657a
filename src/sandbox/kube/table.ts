// biome-ignore-all lint/suspicious/noExplicitAny: Kubernetes objects are arbitrary JSON whose shape is checked by schemas at run time, not by types.
import type { ResourceType } from './resources.ts';

/** kubectl asks for a Table so the server decides the columns, as for `kubectl get vs`. */
export function wantsTable(accept: string | undefined): boolean {
  return /as=Table/.test(accept ?? '');
}

const EXTRA_COLUMNS: Record<string, { name: string; get: (o: any) => unknown }[]> = {
  VirtualService: [
    { name: 'Gateways', get: (o) => o.spec?.gateways },
    { name: 'Hosts', get: (o) => o.spec?.hosts },
  ],
  DestinationRule: [{ name: 'Host', get: (o) => o.spec?.host }],
  ServiceEntry: [
    { name: 'Hosts', get: (o) => o.spec?.hosts },
    { name: 'Location', get: (o) => o.spec?.location },
    { name: 'Resolution', get: (o) => o.spec?.resolution },
  ],
  Deployment: [
    { name: 'Ready', get: (o) => `${o.status?.readyReplicas ?? 0}/${o.spec?.replicas ?? 1}` },
    { name: 'Up-to-date', get: (o) => o.status?.updatedReplicas ?? 0 },
    { name: 'Available', get: (o) => o.status?.availableReplicas ?? 0 },
  ],
  ReplicaSet: [
    { name: 'Desired', get: (o) => o.spec?.replicas ?? 1 },
    { name: 'Current', get: (o) => o.status?.replicas ?? 0 },
    { name: 'Ready', get: (o) => o.status?.readyReplicas ?? 0 },
  ],
  Pod: [
    {
      name: 'Ready',
      get: (o) =>
        `${(o.status?.containerStatuses ?? []).filter((c: any) => c.ready).length}/${o.spec?.containers?.length ?? 0}`,
    },
    {
      name: 'Status',
      get: (o) =>
        (o.status?.containerStatuses ?? []).find((c: any) => c.state?.waiting)?.state.waiting.reason ??
        o.status?.phase ??
        'Pending',
    },
    {
      name: 'Restarts',
      get: (o) =>
        (o.status?.containerStatuses ?? []).reduce((n: number, c: any) => n + (c.restartCount ?? 0), 0),
    },
    { name: 'IP', get: (o) => o.status?.podIP ?? '<none>' },
  ],
  Service: [
    { name: 'Type', get: (o) => o.spec?.type ?? 'ClusterIP' },
    { name: 'Cluster-IP', get: (o) => o.spec?.clusterIP ?? '<none>' },
  ],
  Namespace: [{ name: 'Status', get: () => 'Active' }],
};

function age(ts: string | undefined): string {
  if (!ts) return '<unknown>';
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(ts)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

function cell(v: unknown): unknown {
  if (v === undefined || v === null) return '';
  if (Array.isArray(v)) return JSON.stringify(v);
  return v;
}

/** `kubectl get events` columns, as a real API server gives them. */
function eventTable(objects: any[], listMeta: Record<string, unknown>): unknown {
  const col = (name: string, type = 'string') => ({ name, type, format: '', description: name, priority: 0 });
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions: [col('Last Seen'), col('Type'), col('Reason'), col('Object'), col('Message')],
    rows: objects.map((o) => ({
      cells: [
        age(o.lastTimestamp ?? o.eventTime ?? o.metadata.creationTimestamp),
        o.type ?? '',
        o.reason ?? '',
        `${(o.involvedObject?.kind ?? '').toLowerCase()}/${o.involvedObject?.name ?? ''}`,
        o.message ?? '',
      ],
      object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata },
    })),
  };
}

export function toTable(t: ResourceType, objects: any[], listMeta: Record<string, unknown> = {}): unknown {
  if (t.kind === 'Event') return eventTable(objects, listMeta);
  const extra = EXTRA_COLUMNS[t.kind] ?? [];
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions: [
      { name: 'Name', type: 'string', format: 'name', description: 'Name', priority: 0 },
      ...extra.map((c) => ({ name: c.name, type: 'string', format: '', description: c.name, priority: 0 })),
      { name: 'Age', type: 'date', format: '', description: 'Age', priority: 0 },
    ],
    rows: objects.map((o) => ({
      cells: [o.metadata.name, ...extra.map((c) => cell(c.get(o))), age(o.metadata.creationTimestamp)],
      object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata },
    })),
  };
}
