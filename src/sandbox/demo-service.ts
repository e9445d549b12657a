// biome-ignore-all lint/suspicious/noExplicitAny: Kubernetes objects are arbitrary JSON checked by the simulator's schemas.
import { ERROR_RATE_ANNOTATION, endpointsOf, LATENCY_ANNOTATION } from './pods/index.ts';

/** One version of a demo service: a Deployment `<name>-<version>` whose pods behave as told. */
export interface DemoVersion {
  version: string;
  /** Share of requests answered 500, 0..1. Default 0. */
  errorRate?: number;
  /** Mean answer time in ms. Default 10. */
  latencyMs?: number;
  /** Default 1. */
  replicas?: number;
}

export interface DemoServiceOptions {
  namespace: string;
  /** Service, Deployments' prefix, VirtualService and DestinationRule name. */
  name: string;
  versions: DemoVersion[];
  /** The subset the VirtualService's `default` route sends everything to. Default: the first version. */
  stable?: string;
  /** Subsets of the DestinationRule. Default: the stable one only (vane adds the canary's). */
  subsets?: string[];
  /** The VirtualService's http routes; default one route named `default` to the stable subset. */
  http?: any[];
}

const ISTIO = 'networking.istio.io/v1';

/**
 * The objects of a bookinfo-like service (Istio's `reviews` sample: one Deployment per version,
 * pods labelled `app` and `version`, a Service selecting `app`, a VirtualService and a
 * DestinationRule), in the order a cluster needs them.
 */
export function demoServiceObjects(o: DemoServiceOptions): any[] {
  const stable = o.stable ?? o.versions[0]?.version;
  if (!stable) throw new Error(`demo service ${o.namespace}/${o.name}: give at least one version`);
  const labels = (v: string) => ({ app: o.name, version: v });
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: o.namespace } },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: o.name, namespace: o.namespace, labels: { app: o.name, service: o.name } },
      spec: { ports: [{ port: 9080, name: 'http' }], selector: { app: o.name } },
    },
    ...o.versions.map((v) => ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: `${o.name}-${v.version}`, namespace: o.namespace, labels: labels(v.version) },
      spec: {
        replicas: v.replicas ?? 1,
        selector: { matchLabels: labels(v.version) },
        template: {
          metadata: {
            labels: labels(v.version),
            annotations: {
              [ERROR_RATE_ANNOTATION]: String(v.errorRate ?? 0),
              [LATENCY_ANNOTATION]: String(v.latencyMs ?? 10),
            },
          },
          spec: {
            containers: [
              {
                name: o.name,
                image: `docker.io/istio/examples-bookinfo-${o.name}-${v.version}:1.20.1`,
                ports: [{ containerPort: 9080 }],
              },
            ],
          },
        },
      },
    })),
    {
      apiVersion: ISTIO,
      kind: 'DestinationRule',
      metadata: { name: o.name, namespace: o.namespace },
      spec: {
        host: o.name,
        subsets: (o.subsets ?? [stable]).map((s) => ({ name: s, labels: labels(s) })),
      },
    },
    {
      apiVersion: ISTIO,
      kind: 'VirtualService',
      metadata: { name: o.name, namespace: o.namespace },
      spec: {
        hosts: [o.name],
        http: o.http ?? [{ name: 'default', route: [{ destination: { host: o.name, subset: stable } }] }],
      },
    },
  ];
}

interface ObjectWriter {
  putObject(obj: any): any;
  listObjects(apiVersion: string, kind: string, namespace?: string): any[];
}

/** Creates (or puts back as new) a demo service in the simulator; resolves once every version has a ready pod. */
export async function applyDemoService(
  sim: ObjectWriter,
  o: DemoServiceOptions,
  timeoutMs = 30_000,
): Promise<void> {
  for (const obj of demoServiceObjects(o)) sim.putObject(obj);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ready = endpointsOf(sim, o.namespace, o.name) ?? [];
    const missing = o.versions.filter(
      (v) => ready.filter((e) => e.labels.version === v.version).length < (v.replicas ?? 1),
    );
    if (!missing.length) return;
    if (Date.now() > deadline)
      throw new Error(
        `demo service ${o.namespace}/${o.name}: no ready pod of ${missing.map((v) => v.version).join(', ')} after ${timeoutMs}ms`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}
