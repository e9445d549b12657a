import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { DestinationRuleObject, VirtualServiceObject } from '../../src/mesh/istio.ts';
import type { MeshTarget } from '../../src/mesh/types.ts';

export const FIXTURES = join(import.meta.dirname, 'fixtures');

/** The objects of a fixture file, by kind and name. */
export function loadFixture(file: string) {
  const docs = parseAllDocuments(readFileSync(join(FIXTURES, file), 'utf8')).map((d) => d.toJS());
  const vs = (name: string) =>
    structuredClone(
      docs.find((d) => d.kind === 'VirtualService' && d.metadata.name === name),
    ) as VirtualServiceObject;
  const dr = (name: string) =>
    structuredClone(
      docs.find((d) => d.kind === 'DestinationRule' && d.metadata.name === name),
    ) as DestinationRuleObject;
  return { docs, vs, dr };
}

export function reviewsTarget(over: Partial<MeshTarget> = {}): MeshTarget {
  return {
    namespace: 'bookinfo',
    virtualService: 'reviews',
    destinationRule: 'reviews',
    stableSubset: 'v1',
    canarySubset: 'v3',
    canaryLabels: { version: 'v3' },
    ...over,
  };
}
