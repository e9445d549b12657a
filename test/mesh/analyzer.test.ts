import { describe, expect, it } from 'vitest';
import { type AnalyzerInput, analyzeTarget } from '../../src/mesh/analyzer.ts';
import { FINDINGS, type FindingCode } from '../../src/mesh/findings.ts';
import type { VirtualServiceObject } from '../../src/mesh/istio.ts';
import { inputFromObjects, objectsFromYaml } from '../../src/mesh/offline.ts';
import type { MeshTarget } from '../../src/mesh/types.ts';
import { loadFixture, reviewsTarget } from './fixtures.ts';

const bookinfo = loadFixture('bookinfo.yaml');
const pods = [
  { source: 'Pod reviews-v1-1', labels: { app: 'reviews', version: 'v1' } },
  { source: 'Pod reviews-v3-1', labels: { app: 'reviews', version: 'v3' } },
];

/** A clean target: bookinfo reviews, stable v1, canary v3 (pods running), no other claims. */
function clean(over: Partial<AnalyzerInput> = {}, target: Partial<MeshTarget> = {}): AnalyzerInput {
  return {
    target: reviewsTarget(target),
    virtualService: bookinfo.vs('reviews'),
    destinationRule: bookinfo.dr('reviews'),
    otherVirtualServices: [bookinfo.vs('ratings'), bookinfo.vs('bookinfo')],
    pods,
    ...over,
  };
}

async function codes(input: AnalyzerInput, opts = {}) {
  const r = await analyzeTarget(input, opts);
  return {
    r,
    codes: r.findings.map((f) => f.code),
    only: (code: FindingCode) => r.findings.filter((f) => f.code === code),
  };
}

describe('preflight analyzer', () => {
  it('a clean target has no findings', async () => {
    const r = await analyzeTarget(clean(), { isTargetBusy: async () => undefined });
    expect(r).toEqual({ target: reviewsTarget(), findings: [], errors: 0, warnings: 0 });
  });

  it('every code has a name and a severity', () => {
    for (const [code, f] of Object.entries(FINDINGS)) {
      expect(code).toMatch(/^VANE01\d\d$/);
      expect(f.name).toMatch(/^[A-Z][A-Za-z0-9]+$/);
    }
  });

  it('VANE0101 VirtualServiceNotFound', async () => {
    const { r } = await codes(clean({ virtualService: undefined }));
    expect(r.findings).toEqual([
      {
        code: 'VANE0101',
        name: 'VirtualServiceNotFound',
        severity: 'error',
        object: { kind: 'VirtualService', namespace: 'bookinfo', name: 'reviews' },
        field: 'metadata.name',
        message: 'VirtualService bookinfo/reviews does not exist',
        fix: 'create it, or set target.virtualService to an existing VirtualService in namespace bookinfo',
      },
    ]);
    expect(r.errors).toBe(1);
  });

  it('VANE0102 RouteNotFound names the routes there are', async () => {
    const { codes: c, only } = await codes(clean({}, { routes: ['default', 'canary'] }));
    expect(c).toEqual(['VANE0102']);
    expect(only('VANE0102')[0]!.message).toBe(
      "VirtualService bookinfo/reviews has no http route named 'canary'; routes are: jason, default",
    );
  });

  it('VANE0103 SubsetNotFound: the stable subset, and a subset a route sends to', async () => {
    const dr = bookinfo.dr('reviews');
    dr.spec!.subsets = dr.spec!.subsets!.filter((s) => s.name !== 'v1' && s.name !== 'v2');
    const { r, only } = await codes(clean({ destinationRule: dr }));
    expect(r.findings.map((f) => [f.code, f.object.kind, f.field])).toEqual([
      ['VANE0103', 'DestinationRule', 'spec.subsets'],
      ['VANE0103', 'VirtualService', 'spec.http[0].route[0].destination.subset'],
    ]);
    expect(only('VANE0103')[0]!.message).toBe(
      "DestinationRule bookinfo/reviews has no subset 'v1' (the stable subset); subsets are: v3",
    );
  });

  it('VANE0104 WeightsDoNotSumTo100: a warning, and an error when they total 0', async () => {
    const vs = bookinfo.vs('reviews');
    vs.spec!.http![1]!.route = [
      { destination: { host: 'reviews', subset: 'v1' }, weight: 3 },
      { destination: { host: 'reviews', subset: 'v3' }, weight: 1 },
    ];
    const warn = await codes(clean({ virtualService: vs }));
    expect(warn.r.findings.map((f) => [f.code, f.severity, f.field])).toEqual([
      ['VANE0104', 'warning', 'spec.http[1].route'],
    ]);
    expect(warn.r.errors).toBe(0);
    vs.spec!.http![1]!.route = vs.spec!.http![1]!.route.map((d) => ({ ...d, weight: 0 }));
    const err = await codes(clean({ virtualService: vs }));
    expect(err.r.findings.map((f) => [f.code, f.severity])).toEqual([['VANE0104', 'error']]);
  });

  it('VANE0105 HostClaimedByAnotherVirtualService: an error for the mesh, a warning on a shared gateway', async () => {
    const other: VirtualServiceObject = {
      apiVersion: 'networking.istio.io/v1beta1',
      kind: 'VirtualService',
      metadata: { name: 'reviews-legacy', namespace: 'frontend' },
      spec: {
        hosts: ['reviews.bookinfo.svc.cluster.local'],
        http: [{ route: [{ destination: { host: 'reviews.bookinfo' } }] }],
      },
    };
    const { r } = await codes(clean({ otherVirtualServices: [other] }));
    expect(r.findings.map((f) => [f.code, f.severity])).toEqual([['VANE0105', 'error']]);
    expect(r.findings[0]!.message).toContain('VirtualService frontend/reviews-legacy also routes host');

    const gw = (name: string, gateways: string[], ns = 'bookinfo'): VirtualServiceObject => ({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name, namespace: ns },
      spec: { hosts: ['reviews'], gateways, http: [] },
    });
    const mine = gw('reviews', ['bookinfo-gateway']);
    mine.spec!.http = bookinfo.vs('reviews').spec!.http;
    const shared = await codes(
      clean({ virtualService: mine, otherVirtualServices: [gw('other', ['bookinfo/bookinfo-gateway'])] }),
    );
    expect(shared.r.findings.map((f) => [f.code, f.severity])).toEqual([['VANE0105', 'warning']]);
    // a different gateway, or the same host in another namespace, is no claim
    const none = await codes(
      clean({
        virtualService: mine,
        otherVirtualServices: [gw('other', ['other-gateway']), gw('x', ['mesh'], 'shop')],
      }),
    );
    expect(none.codes).toEqual([]);
  });

  it('VANE0106 CanaryLabelsSelectNoPods (skipped when nothing is known about pods)', async () => {
    const { r } = await codes(clean({ pods: pods.slice(0, 1) }));
    expect(r.findings.map((f) => f.code)).toEqual(['VANE0106']);
    expect(r.findings[0]!.message).toBe(
      'no pod in namespace bookinfo has the canary labels version=v3; pods there have app=reviews,version=v1',
    );
    expect((await codes(clean({ pods: undefined }))).codes).toEqual([]);
  });

  it('VANE0107 TargetBusy: from the engine, or from the owner annotation', async () => {
    const busy = await codes(clean(), { isTargetBusy: async () => 'ro-123' });
    expect(busy.codes).toEqual(['VANE0107']);
    expect(busy.r.findings[0]!.fix).toBe('wait for rollout ro-123 to end, or abort it');
    const vs = bookinfo.vs('reviews');
    vs.metadata!.annotations = { 'vane.dev/rollout': 'ro-9' };
    expect((await codes(clean({ virtualService: vs }))).codes).toEqual(['VANE0107']);
    expect((await codes(clean({ virtualService: vs, rolloutId: 'ro-9' }))).codes).toEqual([]);
  });

  it('VANE0108 DestinationRuleNotFound', async () => {
    const { codes: c } = await codes(clean({ destinationRule: undefined }, { host: 'reviews' }));
    expect(c).toEqual(['VANE0108']);
  });

  it('VANE0109 HostMismatch: target host against the DestinationRule, and a named route to another host', async () => {
    expect((await codes(clean({}, { host: 'ratings' }))).codes).toContain('VANE0109');
    const vs = bookinfo.vs('reviews');
    vs.spec!.http!.push({ name: 'other', route: [{ destination: { host: 'details', subset: 'v1' } }] });
    const { r } = await codes(clean({ virtualService: vs }, { routes: ['default', 'other'] }));
    expect(r.findings.map((f) => [f.code, f.field])).toEqual([['VANE0109', 'spec.http[2].route']]);
  });

  it('VANE0110 NoManagedRoutes lists the routes and where they go', async () => {
    const { r } = await codes(
      clean({}, { stableSubset: 'v3', canarySubset: 'v4', canaryLabels: { version: 'v4' } }),
    );
    expect(r.findings.map((f) => f.code)).toEqual(['VANE0106', 'VANE0110']);
    expect(r.findings[1]!.message).toBe(
      'no http route of VirtualService bookinfo/reviews has a destination reviews subset v3; routes are: jason (reviews v2), default (reviews v1)',
    );
  });

  it('VANE0111 CanarySubsetLabelsDiffer (a warning)', async () => {
    const { r } = await codes(
      clean(
        { pods: [...pods, { source: 'Pod x', labels: { version: 'v3', track: 'canary' } }] },
        {
          canaryLabels: { version: 'v3', track: 'canary' },
        },
      ),
    );
    expect(r.findings.map((f) => [f.code, f.severity, f.field])).toEqual([
      ['VANE0111', 'warning', 'spec.subsets[2].labels'],
    ]);
  });

  it('VANE0112 StableDestinationMissing in a named route', async () => {
    const { codes: c } = await codes(
      clean({}, { routes: ['default', 'jason'], canarySubset: 'v4', canaryLabels: { version: 'v3' } }),
    );
    expect(c).toEqual(['VANE0112']);
  });

  it('VANE0113 DuplicateDestination', async () => {
    const vs = bookinfo.vs('reviews');
    vs.spec!.http![1]!.route = [
      { destination: { host: 'reviews', subset: 'v1', port: { number: 9080 } }, weight: 50 },
      { destination: { host: 'reviews.bookinfo.svc.cluster.local', subset: 'v1' }, weight: 50 },
    ];
    expect((await codes(clean({ virtualService: vs }))).codes).toEqual(['VANE0113']);
  });

  it('VANE0114 CanaryLabelsSelectStable', async () => {
    const { codes: c } = await codes(clean({}, { canaryLabels: { version: 'v1' } }));
    expect(c).toContain('VANE0114');
  });

  it('VANE0115 SameStableAndCanarySubset', async () => {
    const { codes: c } = await codes(clean({}, { canarySubset: 'v1', canaryLabels: { version: 'v3' } }));
    expect(c).toContain('VANE0115');
  });

  it('VANE0116 MirrorAlreadySet (info)', async () => {
    const vs = bookinfo.vs('reviews');
    vs.spec!.http![1]!.mirror = { host: 'reviews-shadow' };
    const { r } = await codes(clean({ virtualService: vs }));
    expect(r.findings.map((f) => [f.code, f.severity])).toEqual([['VANE0116', 'info']]);
    expect(r.errors + r.warnings).toBe(0);
  });
});

describe('offline objects', () => {
  it('reads several documents, Lists and pod templates; objects without a namespace get the default', () => {
    const set = objectsFromYaml(
      [
        {
          name: 'a.yaml',
          text: `apiVersion: v1
kind: List
items:
  - apiVersion: networking.istio.io/v1beta1
    kind: VirtualService
    metadata: { name: reviews }
    spec: { hosts: [reviews], http: [{ route: [{ destination: { host: reviews, subset: v1 } }] }] }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: reviews-v3, namespace: bookinfo }
spec: { template: { metadata: { labels: { app: reviews, version: v3 } } } }
`,
        },
        {
          name: 'b.yaml',
          text: `apiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\nmetadata: { name: reviews }\nspec: { host: reviews, subsets: [{ name: v1, labels: { version: v1 } }] }\n`,
        },
      ],
      'bookinfo',
    );
    const input = inputFromObjects(set, reviewsTarget());
    expect(input.virtualService?.metadata?.namespace).toBe('bookinfo');
    expect(input.destinationRule?.apiVersion).toBe('networking.istio.io/v1alpha3');
    expect(input.pods).toEqual([
      { source: 'Deployment reviews-v3', labels: { app: 'reviews', version: 'v3' } },
    ]);
    expect(input.otherVirtualServices).toEqual([]);
  });
});
