import type { DestinationRuleSpec, Subset } from '../istio.ts';
import { invalid } from './scope.ts';

/** Names the DestinationRule in messages. */
export interface ObjectRef {
  namespace: string;
  name: string;
}

function drName(ref: ObjectRef): string {
  return `DestinationRule ${ref.namespace}/${ref.name}`;
}

function sameLabels(a: Record<string, string> | undefined, b: Record<string, string>): boolean {
  const ka = Object.keys(a ?? {});
  return ka.length === Object.keys(b).length && ka.every((k) => a?.[k] === b[k]);
}

function checkLabels(ref: ObjectRef, subset: string, labels: Record<string, string>): void {
  if (!Object.keys(labels).length) {
    throw invalid(
      `subset '${subset}' of ${drName(ref)} needs labels; without them it selects every pod of the host`,
    );
  }
}

/**
 * Ensures a subset with these labels: created when missing, its labels replaced when they differ
 * (its trafficPolicy kept). `created` says whether this call added it.
 */
export function ensureSubset(
  spec: DestinationRuleSpec,
  ref: ObjectRef,
  name: string,
  labels: Record<string, string>,
): { spec: DestinationRuleSpec; created: boolean } {
  checkLabels(ref, name, labels);
  const subsets = spec.subsets ?? [];
  const i = subsets.findIndex((s) => s.name === name);
  if (i < 0) {
    return { spec: { ...spec, subsets: [...subsets, { name, labels: { ...labels } }] }, created: true };
  }
  if (sameLabels(subsets[i]!.labels, labels)) return { spec, created: false };
  const next: Subset = { ...subsets[i]!, labels: { ...labels } };
  return { spec: { ...spec, subsets: subsets.map((s, j) => (j === i ? next : s)) }, created: false };
}

/** Sets the labels of an existing subset (promotion by relabelling the stable subset). */
export function relabelSubset(
  spec: DestinationRuleSpec,
  ref: ObjectRef,
  name: string,
  labels: Record<string, string>,
): DestinationRuleSpec {
  checkLabels(ref, name, labels);
  const subsets = spec.subsets ?? [];
  if (!subsets.some((s) => s.name === name)) {
    throw invalid(
      `${drName(ref)} has no subset '${name}'; subsets are: ${subsets.map((s) => s.name).join(', ') || '(none)'}`,
    );
  }
  return ensureSubset(spec, ref, name, labels).spec;
}

/** Removes a subset; the input when it is not there. */
export function removeSubset(spec: DestinationRuleSpec, name: string): DestinationRuleSpec {
  const subsets = spec.subsets ?? [];
  if (!subsets.some((s) => s.name === name)) return spec;
  return { ...spec, subsets: subsets.filter((s) => s.name !== name) };
}
