import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compileRoutes,
  type MeshObjects,
  parseIstioDuration,
  type RouteRequest,
  type RouteResult,
  route,
} from '../../../src/sandbox/mesh/routes.ts';
import { destinationRule, pod, seeded, service, virtualService } from './fixtures.ts';

const NS = 'bookinfo';

function objects(over: Partial<MeshObjects> = {}): MeshObjects {
  return { virtualServices: [], destinationRules: [], services: [], pods: [], ...over };
}

function req(over: Partial<RouteRequest> = {}): RouteRequest {
  return { host: 'reviews', path: '/', method: 'GET', headers: {}, namespace: NS, ...over };
}

/** reviews with one pod per version v1..vN and a subset per version. */
function reviews(versions: number, http: unknown[], extra: Partial<MeshObjects> = {}): MeshObjects {
  const vs = Array.from({ length: versions }, (_, i) => `v${i + 1}`);
  return objects({
    virtualServices: [virtualService('reviews', NS, { hosts: ['reviews'], http })],
    destinationRules: [
      destinationRule('reviews', NS, 'reviews', Object.fromEntries(vs.map((v) => [v, { version: v }]))),
    ],
    services: [service('reviews', NS, { app: 'reviews' })],
    pods: vs.map((v, i) => pod(`reviews-${v}-abc12-xyz12`, NS, { app: 'reviews', version: v }, 10_000 + i)),
    ...extra,
  });
}

function podOf(r: RouteResult): string {
  return r.kind === 'route'
    ? r.endpoint.pod
    : r.kind === 'local'
      ? `local ${r.answer.status}`
      : `${r.status} ${r.flags}`;
}

const to = (subset: string, weight?: number) => ({
  destination: { host: 'reviews', subset },
  ...(weight !== undefined ? { weight } : {}),
});

describe('route: weights', () => {
  it('over many requests each destination gets its relative weight', () => {
    fc.assert(
      fc.property(
        fc
          .array(fc.integer({ min: 0, max: 100 }), { minLength: 1, maxLength: 5 })
          .filter((w) => w.some((x) => x > 0)),
        fc.integer(),
        (weights, seed) => {
          const table = compileRoutes(
            reviews(weights.length, [{ route: weights.map((w, i) => to(`v${i + 1}`, w)) }]),
          );
          const rnd = seeded(seed);
          const n = 4000;
          const counts = new Map<string, number>();
          for (let i = 0; i < n; i++) {
            const p = podOf(route(table, req(), rnd()));
            counts.set(p, (counts.get(p) ?? 0) + 1);
          }
          const total = weights.reduce((s, w) => s + w, 0);
          weights.forEach((w, i) => {
            const share = (counts.get(`reviews-v${i + 1}-abc12-xyz12`) ?? 0) / n;
            // 5 standard deviations of a binomial share at n = 4000 is at most 0.04.
            expect(Math.abs(share - w / total)).toBeLessThan(0.04);
            if (w === 0) expect(share).toBe(0);
          });
        },
      ),
      { numRuns: 60 },
    );
  });

  it('maps evenly spread random numbers onto the weights exactly (relative weights, any total)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 1000 }), { minLength: 1, maxLength: 4 }), (weights) => {
        const table = compileRoutes(
          reviews(weights.length, [{ route: weights.map((w, i) => to(`v${i + 1}`, w)) }]),
        );
        const n = 1000;
        const counts = new Map<string, number>();
        for (let i = 0; i < n; i++) {
          const p = podOf(route(table, req(), (i + 0.5) / n));
          counts.set(p, (counts.get(p) ?? 0) + 1);
        }
        const total = weights.reduce((s, w) => s + w, 0);
        weights.forEach((w, i) => {
          expect(
            Math.abs((counts.get(`reviews-v${i + 1}-abc12-xyz12`) ?? 0) - (n * w) / total),
          ).toBeLessThanOrEqual(1);
        });
      }),
    );
  });

  it('gives a single destination everything, with or without a weight', () => {
    for (const weight of [undefined, 100, 30]) {
      const table = compileRoutes(reviews(2, [{ route: [to('v2', weight)] }]));
      for (const r of [0, 0.5, 0.999]) expect(podOf(route(table, req(), r))).toBe('reviews-v2-abc12-xyz12');
    }
  });

  it('refuses a route whose weights total 0, as Istio does, and names it', () => {
    const table = compileRoutes(reviews(2, [{ route: [to('v1', 0), to('v2', 0)] }]));
    expect(table.problems.join()).toMatch(
      /VirtualService bookinfo\/reviews spec\.http\[0\]\.route: the weights total 0/,
    );
  });
});

describe('route: matches', () => {
  type Kind = 'exact' | 'prefix' | 'regex';
  const matcher = fc.record({
    kind: fc.constantFrom<Kind>('exact', 'prefix', 'regex'),
    value: fc.stringMatching(/^[ab]{1,3}$/),
  });
  const oracle = (m: { kind: Kind; value: string } | null, v: string | undefined) =>
    m === null ||
    (v !== undefined &&
      (m.kind === 'exact'
        ? v === m.value
        : m.kind === 'prefix'
          ? v.startsWith(m.value)
          : new RegExp(`^(?:${m.value})$`).test(v)));

  it('takes the first route whose match applies, in order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.option(matcher, { nil: null }), { minLength: 1, maxLength: 6 }),
        fc.option(fc.stringMatching(/^[ab]{0,4}$/), { nil: undefined }),
        (matchers, value) => {
          const http = matchers.map((m, i) => ({
            name: `r${i}`,
            ...(m ? { match: [{ headers: { 'x-test': { [m.kind]: m.value } } }] } : {}),
            route: [to(`v${i + 1}`)],
          }));
          const table = compileRoutes(reviews(matchers.length, http));
          const r = route(table, req({ headers: value === undefined ? {} : { 'x-test': value } }), 0.5);
          const expected = matchers.findIndex((m) => oracle(m, value));
          if (expected < 0) expect(podOf(r)).toBe('404 NR');
          else expect(podOf(r)).toBe(`reviews-v${expected + 1}-abc12-xyz12`);
        },
      ),
    );
  });

  const cases: [string, unknown, Partial<RouteRequest>, Partial<RouteRequest>][] = [
    ['uri exact', { uri: { exact: '/ratings' } }, { path: '/ratings?x=1' }, { path: '/ratings/1' }],
    ['uri prefix', { uri: { prefix: '/api/' } }, { path: '/api/v1' }, { path: '/apix' }],
    ['uri regex (whole path)', { uri: { regex: '/r/[0-9]+' } }, { path: '/r/42' }, { path: '/r/42/x' }],
    [
      'header exact',
      { headers: { 'end-user': { exact: 'jason' } } },
      { headers: { 'end-user': 'jason' } },
      { headers: { 'end-user': 'jasonx' } },
    ],
    [
      'header prefix',
      { headers: { 'end-user': { prefix: 'ja' } } },
      { headers: { 'end-user': 'jason' } },
      { headers: { 'end-user': 'bob' } },
    ],
    [
      'header regex',
      { headers: { cookie: { regex: '.*user=jason.*' } } },
      { headers: { cookie: 'a=1; user=jason' } },
      { headers: { cookie: 'user=bob' } },
    ],
    [
      'header names any case in the match',
      { headers: { 'End-User': { exact: 'jason' } } },
      { headers: { 'end-user': 'jason' } },
      { headers: {} },
    ],
    ['method', { method: { exact: 'POST' } }, { method: 'POST' }, { method: 'GET' }],
    [
      'queryParams exact',
      { queryParams: { canary: { exact: 'yes' } } },
      { path: '/x?canary=yes' },
      { path: '/x?canary=no' },
    ],
    [
      'queryParams regex',
      { queryParams: { id: { regex: '[0-9]+' } } },
      { path: '/?id=12' },
      { path: '/?id=1a' },
    ],
    [
      'header present ({})',
      { headers: { 'x-canary': {} } },
      { headers: { 'x-canary': '' } },
      { headers: {} },
    ],
    ['queryParams present ({})', { queryParams: { debug: {} } }, { path: '/?debug' }, { path: '/?other=1' }],
    [
      'uri with ignoreUriCase',
      { uri: { prefix: '/API' }, ignoreUriCase: true },
      { path: '/api/x' },
      { path: '/ap' },
    ],
    [
      'withoutHeaders',
      { withoutHeaders: { 'x-skip': { exact: '1' } } },
      { headers: {} },
      { headers: { 'x-skip': '1' } },
    ],
    ['port', { port: 9080 }, { host: 'reviews:9080' }, { host: 'reviews:9081' }],
    [
      'sourceLabels are ignored',
      { sourceLabels: { app: 'productpage' } },
      {},
      { method: 'GET', path: '/other' },
    ],
    [
      'several conditions all hold',
      { uri: { prefix: '/a' }, method: { exact: 'GET' } },
      { path: '/a' },
      { path: '/a', method: 'PUT' },
    ],
  ];
  it.each(cases)('%s', (_name, match, hit, miss) => {
    const table = compileRoutes(reviews(2, [{ match: [match], route: [to('v2')] }, { route: [to('v1')] }]));
    expect(podOf(route(table, req(hit), 0.5))).toBe('reviews-v2-abc12-xyz12');
    if (_name !== 'sourceLabels are ignored')
      expect(podOf(route(table, req(miss), 0.5))).toBe('reviews-v1-abc12-xyz12');
  });

  it('ORs the entries of a match list', () => {
    const table = compileRoutes(
      reviews(2, [
        { match: [{ uri: { exact: '/a' } }, { uri: { exact: '/b' } }], route: [to('v2')] },
        { route: [to('v1')] },
      ]),
    );
    expect(['/a', '/b', '/c'].map((path) => podOf(route(table, req({ path }), 0)))).toEqual([
      'reviews-v2-abc12-xyz12',
      'reviews-v2-abc12-xyz12',
      'reviews-v1-abc12-xyz12',
    ]);
  });

  it('skips a match bound to other gateways, and a VirtualService not bound to mesh', () => {
    const table = compileRoutes(
      reviews(2, [{ match: [{ gateways: ['bookinfo-gateway'] }], route: [to('v2')] }, { route: [to('v1')] }]),
    );
    expect(podOf(route(table, req(), 0))).toBe('reviews-v1-abc12-xyz12');
    const edgeOnly = reviews(2, [{ route: [to('v2')] }]);
    (edgeOnly.virtualServices[0] as { spec: { gateways: string[] } }).spec.gateways = ['bookinfo-gateway'];
    // No mesh VirtualService: round robin over the Service's pods.
    const t2 = compileRoutes(edgeOnly);
    expect(new Set([0, 1].map(() => podOf(route(t2, req(), 0.99))))).toEqual(
      new Set(['reviews-v1-abc12-xyz12', 'reviews-v2-abc12-xyz12']),
    );
  });

  it('answers 404 NR when no route matches', () => {
    const table = compileRoutes(reviews(1, [{ match: [{ uri: { exact: '/only' } }], route: [to('v1')] }]));
    const r = route(table, req({ path: '/other' }), 0);
    expect(r).toMatchObject({ kind: 'failure', status: 404, flags: 'NR' });
  });
});

describe('route: hosts', () => {
  it('finds the VirtualService by every form of the host, with or without port, in the caller namespace', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(
          'reviews',
          'reviews.bookinfo',
          'reviews.bookinfo.svc',
          'reviews.bookinfo.svc.cluster.local',
          'REVIEWS.Bookinfo',
        ),
        fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
        fc.constantFrom('bookinfo', 'default', 'other'),
        (name, port, caller) => {
          const table = compileRoutes(reviews(2, [{ route: [to('v2')] }]));
          const host = port ? `${name}:${port}` : name;
          const r = route(table, req({ host, namespace: caller }), 0);
          // A short name resolves in the caller's namespace: from elsewhere, `reviews` is another service.
          const resolves = caller === 'bookinfo' || name.includes('.');
          expect(podOf(r)).toBe(resolves ? 'reviews-v2-abc12-xyz12' : '404 NR');
        },
      ),
    );
  });

  it('defaults the caller namespace to default', () => {
    const objs = objects({
      virtualServices: [
        virtualService('web', 'default', {
          hosts: ['web'],
          http: [{ route: [{ destination: { host: 'web' } }] }],
        }),
      ],
      services: [service('web', 'default', { app: 'web' })],
      pods: [pod('web-1', 'default', { app: 'web' }, 10_001)],
    });
    const r = route(compileRoutes(objs), { host: 'web', path: '/', method: 'GET', headers: {} }, 0);
    expect(podOf(r)).toBe('web-1');
  });

  it('prefers a VirtualService in the caller namespace; exportTo "." hides one from others', () => {
    const base = reviews(2, [{ route: [to('v1')] }]);
    const local = virtualService('reviews-from-default', 'default', {
      hosts: ['reviews.bookinfo.svc.cluster.local'],
      http: [{ route: [{ destination: { host: 'reviews.bookinfo.svc.cluster.local', subset: 'v2' } }] }],
    });
    const table = compileRoutes({ ...base, virtualServices: [...base.virtualServices, local] });
    expect(podOf(route(table, req({ host: 'reviews.bookinfo', namespace: 'default' }), 0))).toBe(
      'reviews-v2-abc12-xyz12',
    );
    expect(podOf(route(table, req({ host: 'reviews.bookinfo', namespace: 'bookinfo' }), 0))).toBe(
      'reviews-v1-abc12-xyz12',
    );
    (base.virtualServices[0] as { spec: { exportTo: string[] } }).spec.exportTo = ['.'];
    const hidden = compileRoutes(base);
    // Not visible from default: the Service's own round robin applies.
    const seen = new Set(
      [0, 1, 2, 3].map(() =>
        podOf(route(hidden, req({ host: 'reviews.bookinfo', namespace: 'default' }), 0)),
      ),
    );
    expect(seen.size).toBe(2);
  });
});

describe('route: endpoints', () => {
  it('gives 503 UH when the chosen destination has no ready pod, whatever the others have', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 99 }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        (w, r) => {
          const objs = reviews(2, [{ route: [to('v1', 100 - w), to('v2', w)] }]);
          objs.pods[1] = pod('reviews-v2-abc12-xyz12', NS, { app: 'reviews', version: 'v2' }, 10_001, false);
          const res = route(compileRoutes(objs), req(), r);
          const toV2 = r * 100 >= 100 - w;
          if (toV2) expect(res).toMatchObject({ kind: 'failure', status: 503, flags: 'UH', subset: 'v2' });
          else expect(podOf(res)).toBe('reviews-v1-abc12-xyz12');
        },
      ),
    );
  });

  it('gives 503 UH for a Service with no pods and 503 NC for a subset no DestinationRule defines', () => {
    const none = compileRoutes({ ...reviews(1, [{ route: [to('v1')] }]), pods: [] });
    expect(route(none, req(), 0)).toMatchObject({ status: 503, flags: 'UH' });
    const nc = compileRoutes(reviews(1, [{ route: [to('v9')] }]));
    expect(route(nc, req(), 0)).toMatchObject({ status: 503, flags: 'NC' });
  });

  it('selects pods by the Service selector and the subset labels, and round-robins among them', () => {
    const objs = reviews(1, [{ route: [to('v1')] }]);
    objs.pods.push(
      pod('reviews-v1-abc12-second', NS, { app: 'reviews', version: 'v1' }, 10_010),
      pod('ratings-v1-abc12-xyz12', NS, { app: 'ratings', version: 'v1' }, 10_011),
      pod('reviews-v1-other-ns', 'default', { app: 'reviews', version: 'v1' }, 10_012),
    );
    const table = compileRoutes(objs);
    const seen = [0, 1, 2, 3].map(() => podOf(route(table, req(), 0)));
    expect(seen).toEqual([
      'reviews-v1-abc12-second',
      'reviews-v1-abc12-xyz12',
      'reviews-v1-abc12-second',
      'reviews-v1-abc12-xyz12',
    ]);
  });

  it('without a VirtualService, round-robins over the Service ready pods', () => {
    const objs = objects({
      services: [service('reviews', NS, { app: 'reviews' })],
      pods: [1, 2, 3]
        .map((i) => pod(`reviews-${i}`, NS, { app: 'reviews' }, 10_000 + i))
        .concat(pod('reviews-4', NS, { app: 'reviews' }, 10_004, false)),
    });
    const table = compileRoutes(objs);
    const counts: Record<string, number> = {};
    for (let i = 0; i < 9; i++) {
      const p = podOf(route(table, req(), 0.3));
      counts[p] = (counts[p] ?? 0) + 1;
    }
    expect(counts).toEqual({ 'reviews-1': 3, 'reviews-2': 3, 'reviews-3': 3 });
  });

  it('reads the workload of a pod from its name, as Istio names it', () => {
    const table = compileRoutes(reviews(1, [{ route: [to('v1')] }]));
    const r = route(table, req(), 0);
    expect(r.kind === 'route' && r.endpoint.workload).toBe('reviews-v1');
  });
});

describe('route: policies', () => {
  it('compiles timeout, retries, fault and mirror', () => {
    const table = compileRoutes(
      reviews(2, [
        {
          route: [to('v1')],
          timeout: '1.5s',
          retries: { attempts: 3, perTryTimeout: '200ms', retryOn: '5xx,connect-failure' },
          fault: {
            delay: { fixedDelay: '1s', percentage: { value: 10 } },
            abort: { httpStatus: 503, percentage: { value: 5 } },
          },
          mirror: { host: 'reviews', subset: 'v2' },
          mirrorPercentage: { value: 25 },
        },
      ]),
    );
    const r = route(table, req(), 0);
    expect(r.kind === 'route' && r.route).toMatchObject({
      timeoutMs: 1500,
      retries: { attempts: 3, perTryTimeoutMs: 200, retryOn: ['5xx', 'connect-failure'] },
      fault: { delay: { fixedDelayMs: 1000, percentage: 10 }, abort: { httpStatus: 503, percentage: 5 } },
      mirrors: [{ host: 'reviews.bookinfo.svc.cluster.local', subset: 'v2', percentage: 25 }],
    });
  });

  it('names the field of a bad duration and leaves that VirtualService out', () => {
    const table = compileRoutes(reviews(1, [{ route: [to('v1')], timeout: 'soon' }]));
    expect(table.problems[0]).toMatch(
      /VirtualService bookinfo\/reviews spec\.http\[0\]\.timeout: "soon" is not a duration/,
    );
    expect(table.virtualServices).toEqual([]);
    expect(parseIstioDuration('1m30.5s', 't')).toBe(90_500);
  });
});
