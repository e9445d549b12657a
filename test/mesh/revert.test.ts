import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DestinationRuleSpec, Subset } from '../../src/mesh/istio.ts';
import { revert3, revertSubsets } from '../../src/mesh/kube-router.ts';
import { ensureSubset, relabelSubset } from '../../src/mesh/transforms/index.ts';

const ref = { namespace: 'shop', name: 'cart' };
const written = (spec: DestinationRuleSpec, names: string[]) =>
  Object.fromEntries(names.map((n) => [n, spec.subsets?.find((s) => s.name === n) ?? null]));

describe('rollback reverts what vane wrote to the DestinationRule, three-way', () => {
  it('revert3: vane’s change goes, a change by someone else stays, key by key', () => {
    const was = { app: 'cart', version: 'v1' };
    const wrote = { app: 'cart', version: 'v2' };
    expect(revert3(was, wrote, wrote)).toBe(was);
    expect(revert3(was, wrote, { app: 'cart', version: 'v2', team: 'pay' })).toEqual({
      app: 'cart',
      version: 'v1',
      team: 'pay',
    });
    // both changed the same key: theirs stays
    expect(revert3(was, wrote, { app: 'cart', version: 'v3' })).toEqual({ app: 'cart', version: 'v3' });
    // vane did not change it: theirs stays
    expect(revert3(was, was, { app: 'x' })).toEqual({ app: 'x' });
    // created by vane, then changed by someone else: kept whole
    expect(revert3(null, { name: 'v2' }, { name: 'v2', x: 1 })).toEqual({ name: 'v2', x: 1 });
    expect(revert3(null, { name: 'v2' }, { name: 'v2' })).toBeNull();
  });

  it('a relabelled stable subset selects the old pods again although someone changed its trafficPolicy', () => {
    const original: DestinationRuleSpec = {
      host: 'cart',
      subsets: [{ name: 'v1', labels: { version: 'v1' } }],
    };
    let spec = ensureSubset(original, ref, 'v2', { version: 'v2' }).spec;
    spec = relabelSubset(spec, ref, 'v1', { version: 'v2' });
    const w = written(spec, ['v1', 'v2']);
    const edited: DestinationRuleSpec = {
      ...spec,
      subsets: spec.subsets!.map((s) =>
        s.name === 'v1' ? { ...s, trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } } : s,
      ),
    };
    expect(revertSubsets(edited, original, w)).toEqual({
      host: 'cart',
      subsets: [
        { name: 'v1', labels: { version: 'v1' }, trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } },
      ],
    });
    // nobody else: exactly the original, text and all
    expect(JSON.stringify(revertSubsets(spec, original, w))).toBe(JSON.stringify(original));
  });

  it('property: after any of vane’s subset writes and others’ trafficPolicy edits, rollback gives the original plus their edits', () => {
    const name = fc.constantFrom('v1', 'v2', 'v3', 'v4', 'stable', 'canary');
    const labels = fc.dictionary(fc.constantFrom('app', 'version', 'track'), fc.constantFrom('a', 'b', 'c'), {
      minKeys: 1,
    });
    const subset = fc.record({ name, labels }, { requiredKeys: ['name', 'labels'] });
    fc.assert(
      fc.property(
        fc.uniqueArray(subset, { selector: (s) => s.name, minLength: 1, maxLength: 4 }),
        name,
        labels,
        fc.boolean(),
        fc.array(fc.nat(3), { maxLength: 3 }),
        (subsets, canary, canaryLabels, relabel, editIdx) => {
          const original: DestinationRuleSpec = { host: 'cart', subsets: subsets as Subset[] };
          const stable = subsets[0]!.name;
          if (canary === stable) return;
          const names = [canary];
          let spec = ensureSubset(original, ref, canary, canaryLabels).spec;
          if (relabel) {
            spec = relabelSubset(spec, ref, stable, canaryLabels);
            names.push(stable);
          }
          const w = written(spec, names);
          // someone else sets the trafficPolicy of some subsets that existed before
          const edits = new Set<string>(
            editIdx.filter((i) => i < subsets.length).map((i) => subsets[i]!.name),
          );
          const policy = { connectionPool: { tcp: { maxConnections: 9 } } };
          const edit = (s: Subset) => (edits.has(s.name) ? { ...s, trafficPolicy: policy } : s);
          const current = { ...spec, subsets: spec.subsets!.map(edit) };
          expect(revertSubsets(current, original, w)).toEqual({
            ...original,
            subsets: original.subsets!.map(edit),
          });
        },
      ),
      { numRuns: 300, seed: 11 },
    );
  });
});
