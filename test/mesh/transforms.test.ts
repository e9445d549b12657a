import { describe, expect, it } from 'vitest';
import { qualifyHost, sameHost } from '../../src/mesh/host.ts';
import type { VirtualServiceSpec } from '../../src/mesh/istio.ts';
import {
  detectDrift,
  effectiveWeights,
  ensureSubset,
  normalizeTo100,
  promoteVirtualService,
  readRouteWeights,
  readWeights,
  relabelSubset,
  removeExperimentRoute,
  removeSubset,
  rollbackVirtualService,
  routeScope,
  setExperimentRoute,
  setMirror,
  setWeights,
} from '../../src/mesh/transforms/index.ts';
import { MeshError } from '../../src/mesh/types.ts';
import { loadFixture, reviewsTarget } from './fixtures.ts';

const bookinfo = loadFixture('bookinfo.yaml');
const reviews = () => bookinfo.vs('reviews').spec!;
const scope = routeScope(reviewsTarget(), 'reviews');

describe('hosts', () => {
  it('compare as Istio resolves them in the namespace', () => {
    for (const h of [
      'reviews',
      'reviews.bookinfo',
      'reviews.bookinfo.svc',
      'reviews.bookinfo.svc.cluster.local',
    ]) {
      expect(qualifyHost(h, 'bookinfo')).toBe('reviews.bookinfo.svc.cluster.local');
      expect(sameHost(h, 'reviews', 'bookinfo')).toBe(true);
    }
    expect(sameHost('reviews', 'reviews.other', 'bookinfo')).toBe(false);
    expect(sameHost('reviews', 'ratings', 'bookinfo')).toBe(false);
    expect(sameHost('reviews', 'reviews', 'bookinfo', 'other')).toBe(false);
  });
});

describe('weights', () => {
  it('normalizes relative weights to integers summing to 100', () => {
    expect(normalizeTo100([1, 1, 1])).toEqual([34, 33, 33]);
    expect(normalizeTo100([3, 1])).toEqual([75, 25]);
    expect(effectiveWeights({ route: [{ destination: { host: 'a' } }] }, 'r')).toEqual([100]);
    expect(() =>
      effectiveWeights(
        { route: [{ destination: { host: 'a' }, weight: 0 }, { destination: { host: 'b' } }] },
        'route x',
      ),
    ).toThrow(/route x has weights that total 0/);
  });

  it('adds the canary beside stable in the default route and leaves the jason route alone', () => {
    const before = reviews();
    const after = setWeights(before, scope, { stable: 90, canary: 10 });
    expect(after.http![0]).toBe(before.http![0]);
    expect(after.http![1]).toEqual({
      name: 'default',
      route: [
        { destination: { host: 'reviews', subset: 'v1' }, weight: 90 },
        { destination: { host: 'reviews', subset: 'v3' }, weight: 10 },
      ],
    });
    expect(before).toEqual(reviews()); // the input is not mutated
    expect(readWeights(after, scope)).toEqual({ stable: 90, canary: 10 });
  });

  it('writes nothing new when the weights already are what is asked', () => {
    const spec = reviews();
    expect(setWeights(spec, scope, { stable: 100, canary: 0 })).toBe(spec);
    const once = setWeights(spec, scope, { stable: 75, canary: 25 });
    expect(setWeights(once, scope, { stable: 75, canary: 25 })).toBe(once);
  });

  it('keeps the share of other destinations and refuses weights that cannot add up', () => {
    const ratings = bookinfo.vs('ratings').spec!;
    const s = routeScope(
      {
        ...reviewsTarget({ virtualService: 'ratings', host: 'ratings', canarySubset: 'v2' }),
        routes: ['default'],
      },
      undefined,
    );
    // stable 75 / canary 25 of the 80% the legacy destination leaves
    const after = setWeights(ratings, s, { stable: 75, canary: 25 });
    const route = after.http![1]!;
    expect(route.route!.map((d) => [d.destination.host, d.destination.subset, d.weight])).toEqual([
      ['ratings.bookinfo.svc.cluster.local', 'v1', 60],
      ['ratings.bookinfo.svc.cluster.local', 'v2', 20],
      ['ratings-legacy', undefined, 20],
    ]);
    expect(readWeights(after, s)).toEqual({ stable: 75, canary: 25 });
    // the canary copies the stable destination's port and headers
    expect(route.route![1]!.destination.port).toEqual({ number: 9080 });
    expect(route.route![1]!.headers).toEqual({ request: { set: { 'x-from': 'mesh' } } });
    // retries, timeout, the fault route and tcp routes are untouched
    expect(route.retries).toEqual(ratings.http![1]!.retries);
    expect(route.timeout).toBe('10s');
    expect(after.http![0]).toBe(ratings.http![0]);
    expect(after.tcp).toBe(ratings.tcp);
    expect(() => setWeights(ratings, s, { stable: 50, canary: 40 })).toThrow(
      'weights for VirtualService bookinfo/ratings must sum to 100: stable 50 + canary 40 = 90',
    );
  });

  it('a 1% canary in a route where others take half still gets traffic, and reads back through the hint', () => {
    const spec: VirtualServiceSpec = {
      http: [
        {
          route: [
            { destination: { host: 'reviews', subset: 'v1' }, weight: 50 },
            { destination: { host: 'reviews', subset: 'v0' }, weight: 50 },
          ],
        },
      ],
    };
    const s = routeScope(reviewsTarget({ routes: undefined }), 'reviews');
    const after = setWeights(spec, s, { stable: 99, canary: 1 });
    expect(after.http![0]!.route!.map((d) => d.weight)).toEqual([49, 1, 50]);
    expect(readWeights(after, s)).toEqual({ stable: 98, canary: 2 });
    expect(readWeights(after, s, { stable: 99, canary: 1 })).toEqual({ stable: 99, canary: 1 });
    // a hint that does not explain the weights (someone edited them) is not believed
    expect(readWeights(after, s, { stable: 90, canary: 10 })).toEqual({ stable: 98, canary: 2 });
    const full: VirtualServiceSpec = {
      http: [
        {
          name: 'all-legacy',
          route: [
            { destination: { host: 'reviews', subset: 'v1' }, weight: 0 },
            { destination: { host: 'legacy' }, weight: 100 },
          ],
        },
      ],
    };
    expect(() => setWeights(full, s, { stable: 90, canary: 10 })).toThrow(
      "VirtualService bookinfo/reviews http route 'all-legacy': its other destinations take 100% of the traffic, so nothing is left to split between stable and canary; give reviews subset v1 a weight",
    );
  });

  it('reads relative weights normalized (a v1alpha3 gateway route weighted 3:1)', () => {
    const gw = loadFixture('bookinfo.yaml').vs('bookinfo');
    expect(gw.apiVersion).toBe('networking.istio.io/v1alpha3');
    const s = routeScope(
      reviewsTarget({
        virtualService: 'bookinfo',
        host: 'productpage',
        stableSubset: 'v1',
        canarySubset: 'v0',
      }),
    );
    expect(readRouteWeights(gw.spec!, s)).toEqual([{ route: '#0', weights: { stable: 75, canary: 25 } }]);
    const after = setWeights(gw.spec!, s, { stable: 50, canary: 50 });
    expect(after.http![0]!.route!.map((d) => [d.destination.port, d.weight])).toEqual([
      [{ number: 9080 }, 50],
      [{ number: 9080 }, 50],
    ]);
    expect(after.http![0]!.match).toEqual(gw.spec!.http![0]!.match);
    expect(after.gateways).toEqual(['bookinfo-gateway']);
  });

  it('names the missing route and lists the routes there are', () => {
    const s = routeScope(reviewsTarget({ routes: ['canary'] }), 'reviews');
    const err = (() => {
      try {
        setWeights(reviews(), s, { stable: 50, canary: 50 });
      } catch (e) {
        return e as MeshError;
      }
    })();
    expect(err).toBeInstanceOf(MeshError);
    expect(err!.code).toBe('NotFound');
    expect(err!.retryable).toBe(false);
    expect(err!.message).toBe(
      "VirtualService bookinfo/reviews has no http route named 'canary'; routes are: jason, default",
    );
  });

  it('refuses weights outside 0..100 or not integers', () => {
    expect(() => setWeights(reviews(), scope, { stable: 95.5, canary: 4.5 })).toThrow(
      /integer from 0 to 100/,
    );
    expect(() => setWeights(reviews(), scope, { stable: 110, canary: -10 })).toThrow(/integer from 0 to 100/);
  });

  it('says so when no route has the stable subset', () => {
    expect(() =>
      readWeights(reviews(), routeScope(reviewsTarget({ stableSubset: 'v9' }), 'reviews')),
    ).toThrow(
      'VirtualService bookinfo/reviews has no http route with a destination reviews subset v9; add one, or name the routes to manage in target.routes',
    );
  });

  it('a host written as FQDN in the route matches a short target host', () => {
    const spec: VirtualServiceSpec = {
      hosts: ['reviews'],
      http: [{ route: [{ destination: { host: 'reviews.bookinfo.svc.cluster.local', subset: 'v1' } }] }],
    };
    expect(readWeights(setWeights(spec, scope, { stable: 40, canary: 60 }), scope)).toEqual({
      stable: 40,
      canary: 60,
    });
  });
});

describe('A/B route', () => {
  const exp = {
    routeName: 'vane-ab',
    match: [{ headers: { cookie: { regex: '^(.*?;)?(user=tester)(;.*)?$' } } }],
  };

  it('is placed first, sends matching requests to the canary, updates in place and goes away', () => {
    const spec = setWeights(reviews(), scope, { stable: 90, canary: 10 });
    const withAb = setExperimentRoute(spec, scope, exp);
    expect(withAb.http!.map((r) => r.name)).toEqual(['vane-ab', 'jason', 'default']);
    expect(withAb.http![0]).toEqual({
      name: 'vane-ab',
      match: exp.match,
      route: [{ destination: { host: 'reviews', subset: 'v3' }, weight: 100 }],
    });
    expect(setExperimentRoute(withAb, scope, exp)).toBe(withAb);
    const changed = setExperimentRoute(withAb, scope, {
      ...exp,
      match: [{ queryParams: { ab: { exact: '1' } } }],
    });
    expect(changed.http!.map((r) => r.name)).toEqual(['vane-ab', 'jason', 'default']);
    expect(changed.http![0]!.match).toEqual([{ queryParams: { ab: { exact: '1' } } }]);
    expect(readWeights(withAb, scope)).toEqual({ stable: 90, canary: 10 });
    expect(removeExperimentRoute(withAb, scope, 'vane-ab')).toEqual(spec);
  });

  it('refuses to overwrite a route of the same name that vane did not add, and an empty match', () => {
    expect(() => setExperimentRoute(reviews(), scope, { routeName: 'default', match: exp.match })).toThrow(
      "VirtualService bookinfo/reviews already has an http route named 'default' that vane did not add; choose another name for the A/B route",
    );
    expect(() => setExperimentRoute(reviews(), scope, { routeName: 'ab', match: [{}] })).toThrow(
      /non-empty match/,
    );
  });
});

describe('mirror', () => {
  it('sets and clears mirror and mirrorPercentage on the managed routes only', () => {
    const spec = reviews();
    const m = setMirror(spec, scope, { percent: 25 });
    expect(m.http![1]!.mirror).toEqual({ host: 'reviews', subset: 'v3' });
    expect(m.http![1]!.mirrorPercentage).toEqual({ value: 25 });
    expect(m.http![0]).toBe(spec.http![0]);
    expect(setMirror(m, scope, { percent: 25 })).toBe(m);
    expect(setMirror(m, scope, null)).toEqual(spec);
  });

  it('refuses to replace a mirror the user set', () => {
    const spec = reviews();
    spec.http![1]!.mirror = { host: 'shadow' };
    expect(() => setMirror(spec, scope, { percent: 5 })).toThrow(
      /already mirrors to shadow; remove that mirror/,
    );
    expect(setMirror(spec, scope, null)).toBe(spec);
  });
});

describe('subsets', () => {
  const ref = { namespace: 'bookinfo', name: 'reviews' };
  it('creates the canary subset, updates its labels keeping its trafficPolicy, and removes it', () => {
    const dr = bookinfo.dr('reviews').spec!;
    const withV4 = ensureSubset(dr, ref, 'v4', { version: 'v4' });
    expect(withV4.created).toBe(true);
    expect(withV4.spec.subsets!.at(-1)).toEqual({ name: 'v4', labels: { version: 'v4' } });
    expect(ensureSubset(withV4.spec, ref, 'v4', { version: 'v4' })).toEqual({
      spec: withV4.spec,
      created: false,
    });
    const v3 = ensureSubset(dr, ref, 'v3', { version: 'v3', track: 'canary' });
    expect(v3.created).toBe(false);
    expect(v3.spec.subsets![2]).toEqual({
      name: 'v3',
      labels: { version: 'v3', track: 'canary' },
      trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } },
    });
    expect(v3.spec.trafficPolicy).toBe(dr.trafficPolicy);
    expect(removeSubset(withV4.spec, 'v4')).toEqual(dr);
    expect(removeSubset(dr, 'v4')).toBe(dr);
  });

  it('relabels the stable subset and refuses a missing one', () => {
    const dr = bookinfo.dr('reviews').spec!;
    expect(relabelSubset(dr, ref, 'v1', { version: 'v3' }).subsets![0]).toEqual({
      name: 'v1',
      labels: { version: 'v3' },
    });
    expect(() => relabelSubset(dr, ref, 'stable', { version: 'v3' })).toThrow(
      "DestinationRule bookinfo/reviews has no subset 'stable'; subsets are: v1, v2, v3",
    );
    expect(() => ensureSubset(dr, ref, 'v4', {})).toThrow(/needs labels/);
  });
});

describe('promotion and rollback', () => {
  const progressed = () =>
    setMirror(
      setExperimentRoute(setWeights(reviews(), scope, { stable: 50, canary: 50 }), scope, {
        routeName: 'vane-ab',
        match: [{ headers: { 'x-canary': { exact: '1' } } }],
      }),
      scope,
      { percent: 10 },
    );

  it('shift: the canary takes the stable destination place; repeating changes nothing', () => {
    const p = promoteVirtualService(progressed(), scope, 'shift', { experimentRoute: 'vane-ab' });
    expect(p.http).toEqual([
      reviews().http![0],
      { name: 'default', route: [{ destination: { host: 'reviews', subset: 'v3' }, weight: 100 }] },
    ]);
    expect(promoteVirtualService(p, scope, 'shift', { experimentRoute: 'vane-ab' })).toBe(p);
  });

  it('relabel: stable takes everything, the canary destination goes', () => {
    const p = promoteVirtualService(progressed(), scope, 'relabel', { experimentRoute: 'vane-ab' });
    expect(p.http![1]).toEqual({
      name: 'default',
      route: [{ destination: { host: 'reviews', subset: 'v1' }, weight: 100 }],
    });
  });

  it('rollback: stable 100, no canary destination, no mirror, no A/B route', () => {
    const r = rollbackVirtualService(progressed(), scope, { experimentRoute: 'vane-ab' });
    expect(r.http).toEqual([
      reviews().http![0],
      { name: 'default', route: [{ destination: { host: 'reviews', subset: 'v1' }, weight: 100 }] },
    ]);
    expect(rollbackVirtualService(r, scope, { experimentRoute: 'vane-ab' })).toBe(r);
    expect(rollbackVirtualService(reviews(), scope)).toEqual(reviews());
  });

  it('rollback after a shift of named routes turns the canary back into stable', () => {
    const s = routeScope(reviewsTarget({ routes: ['default'] }), 'reviews');
    const shifted = promoteVirtualService(setWeights(reviews(), s, { stable: 50, canary: 50 }), s, 'shift');
    const r = rollbackVirtualService(shifted, s);
    expect(r.http![1]).toEqual({
      name: 'default',
      route: [{ destination: { host: 'reviews', subset: 'v1' }, weight: 100 }],
    });
  });
});

describe('drift', () => {
  it('is seen when any managed route differs from what vane wrote', () => {
    expect(detectDrift({ stable: 90, canary: 10 }, { stable: 90, canary: 10 })).toEqual({ drifted: false });
    const d = detectDrift(
      { stable: 90, canary: 10 },
      {
        stable: 90,
        canary: 10,
        routes: [
          { route: 'a', weights: { stable: 90, canary: 10 } },
          { route: 'b', weights: { stable: 100, canary: 0 } },
        ],
      },
    );
    expect(d).toEqual({
      drifted: true,
      message: 'route b has stable 100/canary 0; vane last wrote stable 90/canary 10',
      routes: [{ route: 'b', weights: { stable: 100, canary: 0 } }],
    });
    expect(detectDrift({ stable: 90, canary: 10 }, { stable: 80, canary: 20 }).drifted).toBe(true);
  });
});
