import { parseAllDocuments } from 'yaml';
import type { AnalyzerInput, PodLabels } from './analyzer.ts';
import { type DestinationRuleObject, ISTIO_GROUP, type VirtualServiceObject } from './istio.ts';
import type { MeshTarget } from './types.ts';

/** The objects found in YAML files, each with its namespace filled in. */
export interface ObjectSet {
  virtualServices: VirtualServiceObject[];
  destinationRules: DestinationRuleObject[];
  /** Pods and the pod templates of workloads, by namespace. */
  pods: Map<string, PodLabels[]>;
}

const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'ReplicaSet', 'DaemonSet', 'Job']);

export class YamlError extends Error {
  override name = 'YamlError';
}

interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  spec?: { template?: { metadata?: { labels?: Record<string, string> } } };
  items?: KubeObject[];
}

/**
 * Reads the objects of YAML files (several documents per file, `kind: List` too). Objects without
 * a namespace are in `defaultNamespace`, as `kubectl apply -n` would put them.
 */
export function objectsFromYaml(
  files: { name: string; text: string }[],
  defaultNamespace: string,
): ObjectSet {
  const set: ObjectSet = { virtualServices: [], destinationRules: [], pods: new Map() };
  const add = (o: KubeObject, file: string) => {
    if (!o || typeof o !== 'object') return;
    if (o.kind === 'List' && Array.isArray(o.items)) {
      for (const item of o.items) add(item, file);
      return;
    }
    const ns = o.metadata?.namespace ?? defaultNamespace;
    const withNs = { ...o, metadata: { ...o.metadata, namespace: ns } };
    const istio = o.apiVersion?.startsWith(`${ISTIO_GROUP}/`);
    if (istio && o.kind === 'VirtualService') set.virtualServices.push(withNs as VirtualServiceObject);
    else if (istio && o.kind === 'DestinationRule')
      set.destinationRules.push(withNs as DestinationRuleObject);
    else if (o.kind === 'Pod' || (o.kind && WORKLOADS.has(o.kind))) {
      const labels = o.kind === 'Pod' ? o.metadata?.labels : o.spec?.template?.metadata?.labels;
      const list = set.pods.get(ns) ?? [];
      list.push({ source: `${o.kind} ${o.metadata?.name ?? '(unnamed)'}`, labels: labels ?? {} });
      set.pods.set(ns, list);
    }
  };
  for (const f of files) {
    for (const doc of parseAllDocuments(f.text)) {
      if (doc.errors.length) throw new YamlError(`${f.name}: ${doc.errors[0]!.message}`);
      add(doc.toJS() as KubeObject, f.name);
    }
  }
  return set;
}

/** The analyzer's input for a target from objects read from files. Pods are checked only when the files hold some. */
export function inputFromObjects(set: ObjectSet, target: MeshTarget): AnalyzerInput {
  const ns = target.namespace;
  const vs = set.virtualServices.find(
    (o) => o.metadata?.namespace === ns && o.metadata?.name === target.virtualService,
  );
  const dr = set.destinationRules.find(
    (o) => o.metadata?.namespace === ns && o.metadata?.name === target.destinationRule,
  );
  const pods = set.pods.size ? (set.pods.get(ns) ?? []) : undefined;
  return {
    target,
    ...(vs ? { virtualService: vs } : {}),
    ...(dr ? { destinationRule: dr } : {}),
    otherVirtualServices: set.virtualServices.filter((o) => o !== vs),
    ...(pods ? { pods } : {}),
  };
}
