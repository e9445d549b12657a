// biome-ignore-all lint/suspicious/noExplicitAny: tests read Kubernetes objects as untyped JSON.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jsonPatch, mergePatch, strategicMergePatch } from '../../../src/sandbox/kube/patch.ts';
import { fieldSelector, labelSelector } from '../../../src/sandbox/kube/selectors.ts';

const json = fc.jsonValue().map((v) => JSON.parse(JSON.stringify(v)));
const object = fc.dictionary(
  fc.string({ maxLength: 5 }).filter((k) => k !== '__proto__'),
  json,
  { maxKeys: 5 },
);

describe('merge patch (RFC 7386)', () => {
  it('patching with the target itself changes nothing', () => {
    fc.assert(
      fc.property(object, (o) => {
        const withoutNulls = JSON.parse(JSON.stringify(o, (_k, v) => (v === null ? undefined : v)));
        expect(mergePatch(withoutNulls, withoutNulls)).toEqual(withoutNulls);
      }),
    );
  });
  it('null removes a key; lists replace', () => {
    expect(mergePatch({ a: 1, b: { c: 2, d: 3 }, l: [1, 2] }, { b: { c: null }, l: [3] })).toEqual({
      a: 1,
      b: { d: 3 },
      l: [3],
    });
  });
});

describe('JSON patch (RFC 6902)', () => {
  it('replace then test of the same value always passes, and never mutates its input', () => {
    fc.assert(
      fc.property(
        object,
        fc.string({ maxLength: 5 }).filter((k) => k !== '__proto__'),
        json,
        (o, key, value) => {
          const before = structuredClone(o);
          const path = `/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
          const out = jsonPatch(o, [
            { op: 'add', path, value },
            { op: 'test', path, value },
          ]) as Record<string, unknown>;
          expect(out[key]).toEqual(value);
          expect(o).toEqual(before);
        },
      ),
    );
  });
  it('supports every operation and fails a whole patch on a failed test', () => {
    const doc = { spec: { http: [{ route: [{ weight: 90 }, { weight: 10 }] }] } };
    expect(
      jsonPatch(doc, [
        { op: 'copy', from: '/spec/http/0/route/0', path: '/spec/http/0/route/-' },
        { op: 'move', from: '/spec/http/0/route/2', path: '/spec/mirror' },
        { op: 'remove', path: '/spec/http/0/route/1' },
        { op: 'replace', path: '/spec/http/0/route/0/weight', value: 100 },
      ]),
    ).toEqual({ spec: { http: [{ route: [{ weight: 100 }] }], mirror: { weight: 90 } } });
    expect(() => jsonPatch(doc, [{ op: 'test', path: '/spec/http/0/route/0/weight', value: 50 }])).toThrow(
      /testing value/,
    );
    expect(() => jsonPatch(doc, [{ op: 'replace', path: '/spec/nope/x', value: 1 }])).toThrow(
      /does not exist/,
    );
  });
});

describe('strategic merge patch', () => {
  it('merges containers by name and honours $patch: delete', () => {
    const live = {
      spec: {
        containers: [
          { name: 'app', image: 'a:1' },
          { name: 'sidecar', image: 's:1' },
        ],
      },
    };
    expect(strategicMergePatch(live, { spec: { containers: [{ name: 'app', image: 'a:2' }] } })).toEqual({
      spec: {
        containers: [
          { name: 'app', image: 'a:2' },
          { name: 'sidecar', image: 's:1' },
        ],
      },
    });
    expect(
      strategicMergePatch(live, { spec: { containers: [{ name: 'sidecar', $patch: 'delete' }] } }),
    ).toEqual({
      spec: { containers: [{ name: 'app', image: 'a:1' }] },
    });
  });
});

describe('selectors', () => {
  const o = (labels: Record<string, string>, name = 'x') => ({ metadata: { name, labels } });
  it('label selectors follow Kubernetes semantics for missing labels', () => {
    expect(labelSelector('a!=1')(o({}))).toBe(true);
    expect(labelSelector('a notin (1)')(o({}))).toBe(true);
    expect(labelSelector('a in (1)')(o({}))).toBe(false);
    expect(labelSelector('a,b=2')(o({ a: '', b: '2' }))).toBe(true);
    expect(() => labelSelector('=x')).toThrow(/unable to parse/);
  });
  it('field selectors support metadata.name only besides namespace', () => {
    expect(fieldSelector('metadata.name=x')(o({}))).toBe(true);
    expect(fieldSelector('metadata.name!=x')(o({}))).toBe(false);
    expect(() => fieldSelector('status.phase=Running')).toThrow(/not supported/);
  });
});
