import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type {
  DestinationRuleSpec,
  HttpRoute,
  HttpRouteDestination,
  VirtualServiceSpec,
} from '../../src/mesh/istio.ts';
import {
  effectiveWeights,
  ensureSubset,
  isSubsetOf,
  promoteVirtualService,
  type RouteScope,
  readRouteWeights,
  relabelSubset,
  removeExperimentRoute,
  removeSubset,
  rollbackVirtualService,
  setExperimentRoute,
  setMirror,
  setWeights,
} from '../../src/mesh/transforms/index.ts';

const RUNS = { numRuns: 150 };
const AB = 'vane-ab';

/** A generated VirtualService with what the properties need to know about it. */
interface Case {
  spec: VirtualServiceSpec;
  scope: RouteScope;
  /** Names of the managed routes. */
  managed: string[];
  /** The share of traffic the managed routes leave to other destinations (the same in each). */
  others: number;
}

const hostSpelling = fc.constantFrom(
  'reviews',
  'reviews.bookinfo',
  'reviews.bookinfo.svc',
  'reviews.bookinfo.svc.cluster.local',
);
const port = fc.option(fc.record({ number: fc.constantFrom(9080, 8080) }), { nil: undefined });
const destHeaders = fc.option(fc.constant({ request: { set: { 'x-route': 'mesh' } } }), { nil: undefined });

/** Fields vane never manages, present or not on any route. */
const routeExtras: fc.Arbitrary<Partial<HttpRoute>> = fc.record(
  {
    match: fc.constant<HttpRoute['match']>([
      { uri: { prefix: '/api' } },
      { headers: { 'end-user': { exact: 'jason' } } },
    ]),
    timeout: fc.constantFrom('1s', '10s'),
    retries: fc.record({ attempts: fc.integer({ min: 1, max: 5 }), perTryTimeout: fc.constant('2s') }),
    fault: fc.constant<HttpRoute['fault']>({ abort: { percentage: { value: 0.1 }, httpStatus: 503 } }),
    headers: fc.constant<HttpRoute['headers']>({ response: { add: { 'x-served-by': 'reviews' } } }),
    corsPolicy: fc.constant<HttpRoute['corsPolicy']>({
      allowOrigins: [{ exact: 'https://example.com' }],
      allowMethods: ['GET'],
    }),
    rewrite: fc.constant<HttpRoute['rewrite']>({ uri: '/v1' }),
  },
  { requiredKeys: [] },
);

function dest(host: string, subset: string | undefined, p: { number: number } | undefined, weight?: number) {
  const d: HttpRouteDestination = {
    destination: { host, ...(subset ? { subset } : {}), ...(p ? { port: p } : {}) },
  };
  if (weight !== undefined) d.weight = weight;
  return d;
}

/** Integers ≥ 0 summing to `total`, `n` of them. */
function partition(total: number, n: number) {
  if (n === 1) return fc.constant([total]);
  return fc.array(fc.integer({ min: 0, max: total }), { minLength: n - 1, maxLength: n - 1 }).map((cuts) => {
    const s = [0, ...cuts.sort((a, b) => a - b), total];
    return s.slice(1).map((v, i) => v - s[i]!);
  });
}

function managedRoute(name: string, others: number) {
  const share = 100 - others;
  return fc
    .record({
      host: hostSpelling,
      port,
      headers: destHeaders,
      withCanary: fc.boolean(),
      canary: fc.integer({ min: 0, max: share }),
      otherWeights:
        others > 0
          ? partition(others, 2).map((w) => w.filter((x, i) => i === 0 || x > 0))
          : fc.constant<number[]>([]),
      // Istio's weights are relative; the same route written at 2x or 3x must behave the same.
      scale: fc.constantFrom(1, 1, 2, 3),
      othersFirst: fc.boolean(),
      extras: routeExtras,
    })
    .map((g): HttpRoute => {
      const canary = g.withCanary ? g.canary : 0;
      const stableD = dest(g.host, 'v1', g.port);
      if (g.headers) stableD.headers = g.headers;
      const managed = [stableD, ...(g.withCanary ? [dest(g.host, 'v2', g.port)] : [])];
      const otherDs = g.otherWeights.map((_, i) =>
        dest(i === 0 ? 'reviews-legacy' : 'reviews', i === 0 ? undefined : 'v0', g.port),
      );
      const weights = [share - canary, ...(g.withCanary ? [canary] : [])];
      const all = g.othersFirst ? [...otherDs, ...managed] : [...managed, ...otherDs];
      const allW = g.othersFirst ? [...g.otherWeights, ...weights] : [...weights, ...g.otherWeights];
      const single = all.length === 1;
      return {
        name,
        ...g.extras,
        route: all.map((d, i) => (single && g.scale === 1 ? d : { ...d, weight: allW[i]! * g.scale })),
      };
    });
}

const unmanagedRoute = (name: string) =>
  fc.oneof(
    // the bookinfo "jason" route: canary subset only, never managed
    routeExtras.map((e): HttpRoute => ({ name, ...e, route: [dest('reviews', 'v2', undefined)] })),
    routeExtras.map(
      (e): HttpRoute => ({
        name,
        ...e,
        route: [dest('ratings', 'v1', { number: 9080 }, 70), dest('ratings', 'v2', { number: 9080 }, 30)],
        mirror: { host: 'ratings-shadow' },
        mirrorPercentage: { value: 5 },
      }),
    ),
    fc.constant<HttpRoute>({ name, redirect: { uri: '/moved' } }),
  );

const caseArb: fc.Arbitrary<Case> = fc
  .record({
    others: fc.constantFrom(0, 0, 10, 25),
    managedCount: fc.integer({ min: 1, max: 2 }),
    unmanagedCount: fc.integer({ min: 0, max: 3 }),
    named: fc.boolean(),
    gateways: fc.option(fc.constant<string[]>(['bookinfo-gateway', 'mesh']), { nil: undefined }),
    tcp: fc.boolean(),
    seed: fc.integer(),
  })
  .chain((c) =>
    fc
      .record({
        managed: fc.tuple(
          ...Array.from({ length: c.managedCount }, (_, i) => managedRoute(`m${i}`, c.others)),
        ),
        unmanaged: fc.tuple(...Array.from({ length: c.unmanagedCount }, (_, i) => unmanagedRoute(`u${i}`))),
        order: fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
      })
      .map(({ managed, unmanaged, order }): Case => {
        // interleave managed and unmanaged routes in a generated order
        const http: HttpRoute[] = [];
        const m = [...managed];
        const u = [...unmanaged];
        for (const takeManaged of order) {
          const next = takeManaged ? (m.shift() ?? u.shift()) : (u.shift() ?? m.shift());
          if (next) http.push(next);
        }
        http.push(...m, ...u);
        const spec: VirtualServiceSpec = {
          hosts: ['reviews'],
          ...(c.gateways ? { gateways: c.gateways } : {}),
          http,
          ...(c.tcp
            ? { tcp: [{ route: [{ destination: { host: 'mongo', port: { number: 27017 } } }] }] }
            : {}),
        };
        const names = managed.map((r) => r.name!);
        return {
          spec,
          scope: {
            namespace: 'bookinfo',
            virtualService: 'reviews',
            host: 'reviews',
            stableSubset: 'v1',
            canarySubset: 'v2',
            ...(c.named ? { routes: names } : {}),
          },
          managed: names,
          others: c.others,
        };
      }),
  );

const isManagedDest = (d: HttpRouteDestination, s: RouteScope) =>
  isSubsetOf(d, s, s.stableSubset) || isSubsetOf(d, s, s.canarySubset);

/** Everything outside the managed destinations (and vane's own A/B route and mirror), by route name. */
function unmanagedView(spec: VirtualServiceSpec, c: Case) {
  return {
    ...spec,
    http: (spec.http ?? [])
      .filter((r) => r.name !== AB)
      .map((r) => {
        if (!c.managed.includes(r.name!)) return r;
        const { route, mirror: _m, mirrorPercentage: _p, ...rest } = r;
        const eff = effectiveWeights(r, r.name!);
        return {
          ...rest,
          others: (route ?? []).flatMap((d, i) =>
            isManagedDest(d, c.scope) ? [] : [{ ...d, weight: eff[i] }],
          ),
        };
      }),
  };
}

function managedRoutes(spec: VirtualServiceSpec, c: Case): HttpRoute[] {
  return (spec.http ?? []).filter((r) => c.managed.includes(r.name!));
}

/** A stable/canary split. */
const weightsFor = (_c: Case) =>
  fc.integer({ min: 0, max: 100 }).map((canary) => ({ stable: 100 - canary, canary }));

/** A case after some steps of a rollout: weights, maybe an A/B route, maybe a mirror. */
const progressedArb = caseArb.chain((c) =>
  fc
    .record({ w: weightsFor(c), ab: fc.boolean(), mirror: fc.option(fc.integer({ min: 0, max: 100 })) })
    .map((o) => {
      let spec = setWeights(c.spec, c.scope, o.w);
      if (o.ab)
        spec = setExperimentRoute(spec, c.scope, {
          routeName: AB,
          match: [{ headers: { 'x-ab': { exact: '1' } } }],
        });
      if (o.mirror !== null) spec = setMirror(spec, c.scope, { percent: o.mirror });
      return { c, spec, w: o.w };
    }),
);

describe('VirtualService transforms (properties)', () => {
  it('setWeights: integer weights 0..100 summing to 100 per managed route; readWeights gives them back', () => {
    fc.assert(
      fc.property(
        caseArb.chain((c) => fc.tuple(fc.constant(c), weightsFor(c))),
        ([c, w]) => {
          const before = structuredClone(c.spec);
          const after = setWeights(c.spec, c.scope, w);
          expect(c.spec).toEqual(before); // input not mutated
          for (const r of managedRoutes(after, c)) {
            const eff = effectiveWeights(r, r.name!);
            expect(eff.every((x) => Number.isInteger(x) && x >= 0 && x <= 100)).toBe(true);
            expect(eff.reduce((a, b) => a + b, 0)).toBe(100);
            if (r.route!.length > 1) expect(r.route!.reduce((a, d) => a + (d.weight ?? 0), 0) % 100).toBe(0);
          }
          // exact with what vane wrote as the hint; exact without it when nothing else shares the route
          for (const rw of readRouteWeights(after, c.scope, w)) expect(rw.weights).toEqual(w);
          if (c.others === 0)
            for (const rw of readRouteWeights(after, c.scope)) expect(rw.weights).toEqual(w);
          for (const r of managedRoutes(after, c)) {
            const eff = effectiveWeights(r, r.name!);
            const canaryAt = r.route!.findIndex((d) => isSubsetOf(d, c.scope, 'v2'));
            // asked for traffic, the canary gets some; asked for none, it gets none
            expect(canaryAt >= 0 && eff[canaryAt]! > 0).toBe(w.canary > 0);
          }
        },
      ),
      RUNS,
    );
  });

  it('setWeights, setMirror, the A/B route: unmanaged content is deep-equal to before', () => {
    fc.assert(
      fc.property(progressedArb, ({ c, spec }) => {
        expect(unmanagedView(spec, c)).toEqual(unmanagedView(c.spec, c));
      }),
      RUNS,
    );
  });

  it('every transform is idempotent', () => {
    fc.assert(
      fc.property(progressedArb, fc.integer({ min: 0, max: 100 }), ({ c, spec, w }, pct) => {
        const again = <T>(f: (s: VirtualServiceSpec) => T & VirtualServiceSpec) => {
          const once = f(spec);
          expect(f(once)).toEqual(once);
        };
        again((s) => setWeights(s, c.scope, w));
        again((s) => setMirror(s, c.scope, { percent: pct }));
        again((s) => setMirror(s, c.scope, null));
        again((s) =>
          setExperimentRoute(s, c.scope, {
            routeName: AB,
            match: [{ queryParams: { ab: { exact: 'on' } } }],
          }),
        );
        again((s) => removeExperimentRoute(s, c.scope, AB));
        again((s) => promoteVirtualService(s, c.scope, 'shift', { experimentRoute: AB }));
        again((s) => promoteVirtualService(s, c.scope, 'relabel', { experimentRoute: AB }));
        again((s) => rollbackVirtualService(s, c.scope, { experimentRoute: AB }));
      }),
      RUNS,
    );
  });

  it('rollback always ends at stable 100 (of the managed share) with no canary destination, mirror or A/B route', () => {
    fc.assert(
      fc.property(progressedArb, ({ c, spec }) => {
        const r = rollbackVirtualService(spec, c.scope, { experimentRoute: AB });
        expect(r.http!.some((x) => x.name === AB)).toBe(false);
        for (const route of managedRoutes(r, c)) {
          expect(route.route!.some((d) => isSubsetOf(d, c.scope, 'v2'))).toBe(false);
          expect(route.mirror?.subset).not.toBe('v2');
        }
        for (const route of managedRoutes(r, c)) {
          const eff = effectiveWeights(route, route.name!);
          const i = route.route!.findIndex((d) => isSubsetOf(d, c.scope, 'v1'));
          expect(eff[i]).toBe(100 - c.others);
        }
        for (const rw of readRouteWeights(r, c.scope)) expect(rw.weights).toEqual({ stable: 100, canary: 0 });
        expect(unmanagedView(r, c)).toEqual(unmanagedView(c.spec, c));
      }),
      RUNS,
    );
  });

  it('promotion by shift leaves the canary with the whole managed share and no stable destination', () => {
    fc.assert(
      fc.property(progressedArb, ({ c, spec }) => {
        const p = promoteVirtualService(spec, c.scope, 'shift', { experimentRoute: AB });
        for (const route of managedRoutes(p, c)) {
          const eff = effectiveWeights(route, route.name!);
          const i = route.route!.findIndex((d) => isSubsetOf(d, c.scope, 'v2'));
          expect(route.route!.some((d) => isSubsetOf(d, c.scope, 'v1'))).toBe(false);
          expect(eff[i]).toBe(100 - c.others);
        }
        expect(unmanagedView(p, c)).toEqual(unmanagedView(c.spec, c));
      }),
      RUNS,
    );
  });
});

describe('DestinationRule transforms (properties)', () => {
  const labels = fc.dictionary(
    fc.constantFrom('version', 'track', 'app'),
    fc.constantFrom('v1', 'v2', 'canary'),
    {
      minKeys: 1,
    },
  );
  const drArb = fc
    .record({
      subsets: fc.uniqueArray(
        fc.record(
          {
            name: fc.constantFrom('v1', 'v2', 'v3', 'stable', 'canary'),
            labels,
            trafficPolicy: fc.constant({ tls: { mode: 'ISTIO_MUTUAL' as const } }),
          },
          { requiredKeys: ['name', 'labels'] },
        ),
        { selector: (s) => s.name, maxLength: 4 },
      ),
      policy: fc.boolean(),
    })
    .map(
      ({ subsets, policy }): DestinationRuleSpec => ({
        host: 'reviews',
        ...(policy ? { trafficPolicy: { loadBalancer: { simple: 'LEAST_REQUEST' as const } } } : {}),
        subsets,
      }),
    );
  const ref = { namespace: 'bookinfo', name: 'reviews' };

  it('ensureSubset is idempotent, keeps other subsets and the top-level policy, and removeSubset undoes a creation', () => {
    fc.assert(
      fc.property(drArb, fc.constantFrom('v2', 'canary', 'v9'), labels, (dr, name, l) => {
        const before = structuredClone(dr);
        const { spec, created } = ensureSubset(dr, ref, name, l);
        expect(dr).toEqual(before);
        expect(ensureSubset(spec, ref, name, l)).toEqual({ spec, created: false });
        expect(spec.subsets!.find((s) => s.name === name)!.labels).toEqual(l);
        expect(spec.subsets!.filter((s) => s.name !== name)).toEqual(
          dr.subsets!.filter((s) => s.name !== name),
        );
        expect(spec.trafficPolicy).toEqual(dr.trafficPolicy);
        const old = dr.subsets!.find((s) => s.name === name);
        if (old) expect(spec.subsets!.find((s) => s.name === name)!.trafficPolicy).toEqual(old.trafficPolicy);
        expect(created).toBe(!old);
        if (created) expect(removeSubset(spec, name)).toEqual(dr);
        if (old) expect(relabelSubset(spec, ref, name, l)).toEqual(spec);
      }),
      RUNS,
    );
  });
});
