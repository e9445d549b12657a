// biome-ignore-all lint/suspicious/noExplicitAny: test objects are plain Kubernetes JSON.
import { POD_PORT_ANNOTATION } from '../../../src/sandbox/mesh/routes.ts';

/** Objects as the pod runtime and a user would write them, for the gateway's tests. */

export function virtualService(name: string, namespace: string, spec: Record<string, unknown>): any {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name, namespace },
    spec,
  };
}

export function destinationRule(
  name: string,
  namespace: string,
  host: string,
  subsets: Record<string, Record<string, string>>,
): any {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name, namespace },
    spec: { host, subsets: Object.entries(subsets).map(([n, labels]) => ({ name: n, labels })) },
  };
}

export function service(name: string, namespace: string, selector: Record<string, string>, port = 9080): any {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { selector, ports: [{ name: 'http', port }] },
  };
}

/** A Pod as the pod runtime leaves it: Ready, podIP 127.0.0.1, its port in an annotation. */
export function pod(
  name: string,
  namespace: string,
  labels: Record<string, string>,
  port: number,
  ready = true,
): any {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels, annotations: { [POD_PORT_ANNOTATION]: String(port) } },
    spec: { containers: [{ name: 'app', image: 'demo' }] },
    status: {
      phase: 'Running',
      podIP: '127.0.0.1',
      conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
    },
  };
}

/** A small, seedable PRNG (mulberry32): property runs stay reproducible from fast-check's seed. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
