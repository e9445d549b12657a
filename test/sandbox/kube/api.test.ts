// biome-ignore-all lint/suspicious/noExplicitAny: tests read Kubernetes objects as untyped JSON.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KubeSimulator, startKubeSimulator } from '../../../src/sandbox/kube/index.ts';
import { istioCrdsFile } from '../../helpers/kube.ts';

const VS_PATH = '/apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices';

function vs(name: string, labels: Record<string, string> = {}, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name, namespace: 'bookinfo', labels },
    spec: { hosts: [name], http: [{ route: [{ destination: { host: name } }] }], ...extra },
  };
}

async function call(
  sim: KubeSimulator,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const res = await fetch(sim.url + path, {
    method,
    headers: { 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, body: json, headers: res.headers };
}

/** Reads watch events until `count` arrived (or the stream ends), then aborts. */
async function watchEvents(url: string, count: number, timeoutMs = 10_000): Promise<any[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  const events: any[] = [];
  try {
    const res = await fetch(url, { signal: ac.signal });
    const reader = res.body!.getReader();
    let buf = '';
    while (events.length < count) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += Buffer.from(value).toString();
      let i = buf.indexOf('\n');
      while (i >= 0) {
        events.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
        i = buf.indexOf('\n');
      }
    }
  } catch (e) {
    if ((e as Error).name !== 'AbortError') throw e;
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return events;
}

describe('kube simulator HTTP API', () => {
  let sim: KubeSimulator;
  beforeAll(async () => {
    sim = await startKubeSimulator({ crdsFile: istioCrdsFile(), log: () => {} });
    sim.putObject({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bookinfo' } });
    for (const [name, labels] of [
      ['a', { app: 'a', tier: 'web' }],
      ['b', { app: 'b', tier: 'api' }],
      ['c', { app: 'c' }],
      ['d', { app: 'd', tier: 'web' }],
    ] as const)
      expect((await call(sim, 'POST', VS_PATH, vs(name, labels))).status).toBe(201);
  });
  afterAll(async () => {
    await sim?.close();
  });

  const names = (list: any) => list.items.map((i: any) => i.metadata.name);

  it('serves discovery with short names and the classic formats', async () => {
    expect((await call(sim, 'GET', '/version')).body.gitVersion).toMatch(/^v1\.\d+/);
    const groups = (await call(sim, 'GET', '/apis')).body;
    expect(groups.kind).toBe('APIGroupList');
    expect(
      groups.groups.find((g: any) => g.name === 'networking.istio.io').versions.map((v: any) => v.version),
    ).toEqual(['v1', 'v1beta1', 'v1alpha3']);
    const res = await call(sim, 'GET', '/apis/networking.istio.io/v1alpha3');
    expect(res.headers.get('content-type')).toBe('application/json');
    const vsEntry = res.body.resources.find((r: any) => r.name === 'virtualservices');
    expect(vsEntry).toMatchObject({
      kind: 'VirtualService',
      namespaced: true,
      singularName: 'virtualservice',
      shortNames: ['vs'],
    });
    expect(vsEntry.verbs).toEqual(
      expect.arrayContaining(['get', 'list', 'watch', 'create', 'update', 'patch', 'delete']),
    );
    const shorts = (await call(sim, 'GET', '/apis/networking.istio.io/v1')).body.resources.flatMap(
      (r: any) => r.shortNames ?? [],
    );
    expect(shorts).toEqual(expect.arrayContaining(['vs', 'dr', 'gw', 'se']));
    const index = (await call(sim, 'GET', '/openapi/v3')).body;
    const doc = (await call(sim, 'GET', index.paths['apis/networking.istio.io/v1'].serverRelativeURL)).body;
    expect(
      doc.components.schemas['io.istio.networking.v1.VirtualService']['x-kubernetes-group-version-kind'],
    ).toEqual([{ group: 'networking.istio.io', version: 'v1', kind: 'VirtualService' }]);
  });

  it('lists with label selectors of every operator', async () => {
    const sel = async (s: string) =>
      names((await call(sim, 'GET', `${VS_PATH}?labelSelector=${encodeURIComponent(s)}`)).body);
    expect(await sel('tier=web')).toEqual(['a', 'd']);
    expect(await sel('tier==web')).toEqual(['a', 'd']);
    expect(await sel('tier!=web')).toEqual(['b', 'c']);
    expect(await sel('app in (a,b,x)')).toEqual(['a', 'b']);
    expect(await sel('app notin (a,b)')).toEqual(['c', 'd']);
    expect(await sel('tier')).toEqual(['a', 'b', 'd']);
    expect(await sel('!tier')).toEqual(['c']);
    expect(await sel('tier=web,app!=a')).toEqual(['d']);
    const bad = await call(sim, 'GET', `${VS_PATH}?labelSelector=${encodeURIComponent('a in b')}`);
    expect(bad.status).toBe(400);
    expect(bad.body.reason).toBe('BadRequest');
  });

  it('lists by metadata.name and pages with limit/continue', async () => {
    expect(names((await call(sim, 'GET', `${VS_PATH}?fieldSelector=metadata.name%3Dc`)).body)).toEqual(['c']);
    expect((await call(sim, 'GET', `${VS_PATH}?fieldSelector=spec.hosts%3Dc`)).status).toBe(400);
    const seen: string[] = [];
    let cont = '';
    for (let page = 0; page < 5; page++) {
      const r = (await call(sim, 'GET', `${VS_PATH}?limit=3${cont ? `&continue=${cont}` : ''}`)).body;
      seen.push(...names(r));
      cont = r.metadata.continue ?? '';
      if (!cont) break;
      expect(r.metadata.remainingItemCount).toBe(1);
    }
    expect(seen).toEqual(['a', 'b', 'c', 'd']);
    // All namespaces at once, as `kubectl get vs -A` asks.
    expect(names((await call(sim, 'GET', '/apis/networking.istio.io/v1beta1/virtualservices')).body)).toEqual(
      ['a', 'b', 'c', 'd'],
    );
  });

  it('keeps resourceVersion monotonic across the store and bumps generation on spec changes only', async () => {
    const a = (await call(sim, 'GET', `${VS_PATH}/a`)).body;
    const b = (await call(sim, 'GET', `${VS_PATH}/b`)).body;
    expect(Number(b.metadata.resourceVersion)).toBeGreaterThan(Number(a.metadata.resourceVersion));
    const labelled = await call(
      sim,
      'PATCH',
      `${VS_PATH}/a`,
      { metadata: { labels: { extra: 'x' } } },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    expect(labelled.body.metadata.generation).toBe(1);
    expect(Number(labelled.body.metadata.resourceVersion)).toBeGreaterThan(
      Number(b.metadata.resourceVersion),
    );
    const spec = await call(
      sim,
      'PATCH',
      `${VS_PATH}/a`,
      { spec: { gateways: ['mesh'] } },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    expect(spec.body.metadata.generation).toBe(2);
    // A patch that changes nothing writes nothing.
    const same = await call(
      sim,
      'PATCH',
      `${VS_PATH}/a`,
      { spec: { gateways: ['mesh'] } },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    expect(same.body.metadata.resourceVersion).toBe(spec.body.metadata.resourceVersion);
    const status = await call(
      sim,
      'PATCH',
      `${VS_PATH}/a/status`,
      { status: { observedGeneration: 2 } },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    expect(status.body.status).toEqual({ observedGeneration: 2 });
    expect(status.body.metadata.generation).toBe(2);
  });

  it('answers bad input with Status errors, never a 500', async () => {
    const created = await call(sim, 'POST', VS_PATH, vs('a'));
    expect(created.status).toBe(409);
    expect(created.body).toMatchObject({
      kind: 'Status',
      reason: 'AlreadyExists',
      code: 409,
      message: 'virtualservices.networking.istio.io "a" already exists',
    });
    const missing = await call(sim, 'GET', `${VS_PATH}/nope`);
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({
      reason: 'NotFound',
      details: { name: 'nope', group: 'networking.istio.io', kind: 'virtualservices' },
    });
    expect((await call(sim, 'POST', VS_PATH, '{"apiVersion": ')).status).toBe(400);
    expect(
      (await call(sim, 'PATCH', `${VS_PATH}/a`, '{oops', { 'Content-Type': 'application/merge-patch+json' }))
        .status,
    ).toBe(400);
    const smp = await call(
      sim,
      'PATCH',
      `${VS_PATH}/a`,
      { spec: {} },
      { 'Content-Type': 'application/strategic-merge-patch+json' },
    );
    expect(smp.status).toBe(415);
    expect(smp.body.reason).toBe('UnsupportedMediaType');
    expect((await call(sim, 'PATCH', `${VS_PATH}/a`, {}, { 'Content-Type': 'text/plain' })).status).toBe(415);
    const noRv = await call(sim, 'PUT', `${VS_PATH}/a`, vs('a'));
    expect(noRv.status).toBe(422);
    expect(noRv.body.details.causes[0].field).toBe('metadata.resourceVersion');
    expect((await call(sim, 'PUT', `${VS_PATH}/a`, vs('zzz'))).status).toBe(400);
    const elsewhere = { ...vs('x'), metadata: { name: 'x' } };
    expect(
      (await call(sim, 'POST', '/apis/networking.istio.io/v1/namespaces/ghost/virtualservices', elsewhere))
        .body.message,
    ).toBe('namespaces "ghost" not found');
    expect((await call(sim, 'POST', '/apis/networking.istio.io/v1/virtualservices', vs('x'))).status).toBe(
      405,
    );
    const jsonBad = await call(sim, 'PATCH', `${VS_PATH}/a`, [{ op: 'remove', path: '/spec/nothing' }], {
      'Content-Type': 'application/json-patch+json',
    });
    expect(jsonBad.status).toBe(422);
    for (const weird of [[1, 2], 'null', '"text"', { op: 'add' }])
      expect(
        (await call(sim, 'PATCH', `${VS_PATH}/a`, weird, { 'Content-Type': 'application/json-patch+json' }))
          .status,
      ).toBeLessThan(500);
  });

  it('enforces the CRD CEL rules and refuses unknown fields when asked to be strict', async () => {
    if (!istioCrdsFile()) return;
    expect(sim.unevaluatedCelRules).toEqual([]);
    const r = await call(
      sim,
      'POST',
      VS_PATH,
      vs('slow', {}, { http: [{ timeout: '0s', route: [{ destination: { host: 'slow' } }] }] }),
    );
    expect(r.status).toBe(422);
    expect(r.body.details.causes).toEqual([
      {
        reason: 'FieldValueInvalid',
        field: 'spec.http[0].timeout',
        message: 'Invalid value: "0s": must be a valid duration greater than 1ms',
      },
    ]);
    const strict = await call(
      sim,
      'POST',
      `${VS_PATH}?fieldValidation=Strict`,
      vs('strict', {}, { hostz: ['x'] }),
    );
    expect(strict.status).toBe(400);
    expect(strict.body.message).toBe('strict decoding error: unknown field "spec.hostz"');
    const pruned = await call(sim, 'POST', VS_PATH, vs('pruned', {}, { hostz: ['x'] }));
    expect(pruned.status).toBe(201);
    expect(pruned.body.spec.hostz).toBeUndefined();
  });

  it('watches from a resourceVersion, with bookmarks, and says 410 when it is too old', async () => {
    const list = (await call(sim, 'GET', VS_PATH)).body;
    const rv = list.metadata.resourceVersion;
    const pending = watchEvents(
      `${sim.url}${VS_PATH}?watch=1&resourceVersion=${rv}&allowWatchBookmarks=true`,
      4,
    );
    await new Promise((r) => setTimeout(r, 100));
    await call(sim, 'POST', VS_PATH, vs('w'));
    await call(
      sim,
      'PATCH',
      `${VS_PATH}/w`,
      { spec: { gateways: ['mesh'] } },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    await call(sim, 'DELETE', `${VS_PATH}/w`);
    const events = await pending;
    expect(events.slice(0, 3).map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual([
      'ADDED w',
      'MODIFIED w',
      'DELETED w',
    ]);
    expect(events[3]).toMatchObject({
      type: 'BOOKMARK',
      object: { kind: 'VirtualService', metadata: { resourceVersion: expect.any(String) } },
    });

    // Replay: a watch from the old version gets the same three changes at once.
    const replay = await watchEvents(`${sim.url}${VS_PATH}?watch=true&resourceVersion=${rv}`, 3);
    expect(replay.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED', 'DELETED']);

    for (let i = 0; i < 1_050; i++) sim.putObject(vs('churn', {}, { gateways: [`g${i}`] }));
    const gone = await watchEvents(`${sim.url}${VS_PATH}?watch=1&resourceVersion=${rv}`, 1);
    expect(gone[0]).toMatchObject({
      type: 'ERROR',
      object: { kind: 'Status', code: 410, reason: 'Expired' },
    });
  });

  it('reports objects entering and leaving a watched label selection as ADDED and DELETED', async () => {
    const rv = (await call(sim, 'GET', VS_PATH)).body.metadata.resourceVersion;
    const pending = watchEvents(
      `${sim.url}${VS_PATH}?watch=1&resourceVersion=${rv}&labelSelector=canary%3Dtrue`,
      3,
    );
    const label = (value: string | null) =>
      call(
        sim,
        'PATCH',
        `${VS_PATH}/c`,
        { metadata: { labels: { canary: value } } },
        { 'Content-Type': 'application/merge-patch+json' },
      );
    await label('true');
    await call(
      sim,
      'PATCH',
      `${VS_PATH}/c`,
      { spec: { gateways: ['mesh'] } },
      { 'Content-Type': 'application/merge-patch+json' },
    );
    await label(null);
    await label('false');
    expect((await pending).map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual([
      'ADDED c',
      'MODIFIED c',
      'DELETED c',
    ]);
  });

  it('injects faults by verb and resource: 409, 500, 429 with Retry-After, latency, rate and count', async () => {
    sim.setFaults([{ verb: 'patch', resource: 'virtualservices', status: 409, count: 1 }]);
    const p = () =>
      call(
        sim,
        'PATCH',
        `${VS_PATH}/b`,
        { metadata: { labels: { n: String(Math.random()) } } },
        { 'Content-Type': 'application/merge-patch+json' },
      );
    expect((await p()).body.reason).toBe('Conflict');
    expect((await p()).status).toBe(200);

    sim.setFaults([{ verb: 'get', resource: '*', status: 429, retryAfterSeconds: 7 }]);
    const limited = await call(sim, 'GET', `${VS_PATH}/b`);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('7');
    expect(limited.body).toMatchObject({ reason: 'TooManyRequests', details: { retryAfterSeconds: 7 } });
    expect((await call(sim, 'GET', VS_PATH)).status).toBe(200);

    // Through the admin endpoint, as a test in another process would.
    expect(
      (
        await call(sim, 'POST', '/_sandbox/faults', {
          faults: [
            { verb: 'list', status: 500, rate: 1 },
            { verb: 'get', latencyMs: 300 },
          ],
        })
      ).status,
    ).toBe(200);
    expect((await call(sim, 'GET', VS_PATH)).body.reason).toBe('InternalError');
    const t0 = Date.now();
    expect((await call(sim, 'GET', `${VS_PATH}/b`)).status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
    sim.setFaults([{ verb: 'list', status: 500, rate: 0 }]);
    expect((await call(sim, 'GET', VS_PATH)).status).toBe(200);
    await call(sim, 'DELETE', '/_sandbox/faults');
    sim.clearFaults();
    const badRule = await call(sim, 'POST', '/_sandbox/faults', { faults: [{ verb: 'get', status: 418 }] });
    expect(badRule.status).toBe(400);
    expect(badRule.body.message).toContain('fault rule faults[0].status');
    expect((await call(sim, 'GET', '/_sandbox/faults')).body.faults).toEqual([]);
  });

  it('stores and validates security.istio.io policies and core objects', async () => {
    const pa = (mode: string) => ({
      apiVersion: 'security.istio.io/v1',
      kind: 'PeerAuthentication',
      metadata: { name: 'default' },
      spec: { mtls: { mode } },
    });
    const paPath = '/apis/security.istio.io/v1beta1/namespaces/bookinfo/peerauthentications';
    const bad = await call(sim, 'POST', paPath.replace('v1beta1', 'v1'), pa('SOMETIMES'));
    expect(bad.status).toBe(422);
    expect(bad.body.details.causes[0]).toMatchObject({
      reason: 'FieldValueNotSupported',
      field: 'spec.mtls.mode',
    });
    expect((await call(sim, 'POST', paPath.replace('v1beta1', 'v1'), pa('STRICT'))).status).toBe(201);
    expect((await call(sim, 'GET', `${paPath}/default`)).body.apiVersion).toBe('security.istio.io/v1beta1');
    const ap = {
      apiVersion: 'security.istio.io/v1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'allow-get' },
      spec: { action: 'ALLOW', rules: [{ to: [{ operation: { methods: ['GET'] } }] }] },
    };
    expect(
      (await call(sim, 'POST', '/apis/security.istio.io/v1/namespaces/bookinfo/authorizationpolicies', ap))
        .status,
    ).toBe(201);
    const svc = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'reviews' },
      spec: { ports: [{ port: 9080, name: 'http' }], selector: { app: 'reviews' } },
    };
    expect((await call(sim, 'POST', '/api/v1/namespaces/bookinfo/services', svc)).status).toBe(201);
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'Reviews_1' },
      spec: { containers: [{ name: 'r', image: 'r' }] },
    };
    const badPod = await call(sim, 'POST', '/api/v1/namespaces/bookinfo/pods', pod);
    expect(badPod.status).toBe(422);
    expect(badPod.body.details.causes[0].field).toBe('metadata.name');
  });

  it('deletes a collection by label selector', async () => {
    for (const name of ['tmp-1', 'tmp-2']) await call(sim, 'POST', VS_PATH, vs(name, { temp: 'yes' }));
    const deleted = await call(sim, 'DELETE', `${VS_PATH}?labelSelector=temp%3Dyes`);
    expect(deleted.body.items.map((i: any) => i.metadata.name)).toEqual(['tmp-1', 'tmp-2']);
    expect((await call(sim, 'GET', `${VS_PATH}?labelSelector=temp`)).body.items).toEqual([]);
  });

  it('logs every write a client makes', async () => {
    sim.clearWriteLog();
    await call(sim, 'POST', VS_PATH, vs('logged'));
    await call(sim, 'PATCH', `${VS_PATH}/logged`, [{ op: 'add', path: '/spec/gateways', value: ['mesh'] }], {
      'Content-Type': 'application/json-patch+json',
    });
    await call(sim, 'DELETE', `${VS_PATH}/logged`);
    const log = sim.writeLog();
    expect(log.map((w) => w.verb)).toEqual(['create', 'patch', 'delete']);
    expect(log[1]).toMatchObject({
      group: 'networking.istio.io',
      version: 'v1',
      resource: 'virtualservices',
      namespace: 'bookinfo',
      name: 'logged',
      patchType: 'application/json-patch+json',
      body: { spec: { gateways: ['mesh'] } },
    });
    expect(Number(log[2]!.resourceVersion)).toBeGreaterThan(Number(log[1]!.resourceVersion));
    expect((await call(sim, 'GET', '/_sandbox/writes')).body.writes).toHaveLength(3);
  });
});

describe('kube simulator authentication, authorization and snapshots', () => {
  it('requires the token when set and enforces the allow list', async () => {
    const sim = await startKubeSimulator({
      token: 'secret',
      allow: [
        { verb: 'get', resource: 'virtualservices', namespace: 'bookinfo' },
        { verb: 'patch', resource: 'virtualservices' },
      ],
      log: () => {},
    });
    try {
      sim.putObject(vs('r'));
      const anon = await call(sim, 'GET', `${VS_PATH}/r`);
      expect(anon.status).toBe(401);
      expect(anon.body.reason).toBe('Unauthorized');
      const auth = { Authorization: 'Bearer secret' };
      expect((await call(sim, 'GET', `${VS_PATH}/r`, undefined, auth)).status).toBe(200);
      const del = await call(sim, 'DELETE', `${VS_PATH}/r`, undefined, auth);
      expect(del.status).toBe(403);
      expect(del.body).toMatchObject({ reason: 'Forbidden', code: 403 });
      expect(del.body.message).toContain(
        'cannot delete resource "virtualservices" in API group "networking.istio.io" in the namespace "bookinfo"',
      );
      expect(
        (
          await call(
            sim,
            'GET',
            '/apis/networking.istio.io/v1/namespaces/other/virtualservices/r',
            undefined,
            auth,
          )
        ).status,
      ).toBe(403);
      // client-node sends the token even over plain http (kubectl does not; see the CLI test).
      const custom = sim.kubeConfig().makeApiClient(CustomObjectsApi);
      const got: any = await custom.getNamespacedCustomObject({
        group: 'networking.istio.io',
        version: 'v1',
        namespace: 'bookinfo',
        plural: 'virtualservices',
        name: 'r',
      });
      expect(got.metadata.name).toBe('r');
      const wrong = sim.kubeConfig({ token: 'nope' }).makeApiClient(CustomObjectsApi);
      await expect(
        wrong.getNamespacedCustomObject({
          group: 'networking.istio.io',
          version: 'v1',
          namespace: 'bookinfo',
          plural: 'virtualservices',
          name: 'r',
        }),
      ).rejects.toMatchObject({ code: 401 });
      // Discovery stays open to any authenticated client, as system:discovery is in a real cluster.
      expect((await call(sim, 'GET', '/apis', undefined, auth)).status).toBe(200);
    } finally {
      await sim.close();
    }
  });

  it('survives a restart through its snapshot file, without the CRDs file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vane-kube-snap-'));
    const snapshotFile = join(dir, 'kube.json');
    try {
      const first = await startKubeSimulator({ snapshotFile, log: () => {} });
      const stored = first.putObject(vs('kept'));
      // Without CRDs the Istio models still validate.
      expect(() => first.putObject(vs('broken', {}, { http: { route: [] } }))).toThrow(/spec\.http/);
      await first.close();
      expect(JSON.parse(readFileSync(snapshotFile, 'utf8')).objects.length).toBeGreaterThan(0);

      const second = await startKubeSimulator({ snapshotFile, log: () => {} });
      try {
        const again = second.getObject('networking.istio.io/v1beta1', 'VirtualService', 'bookinfo', 'kept');
        expect(again.metadata.uid).toBe(stored.metadata.uid);
        expect(again.apiVersion).toBe('networking.istio.io/v1beta1');
        const next = second.putObject(vs('after'));
        expect(Number(next.metadata.resourceVersion)).toBeGreaterThan(
          Number(stored.metadata.resourceVersion),
        );
        expect(second.deleteObject('networking.istio.io/v1', 'VirtualService', 'bookinfo', 'kept')).toBe(
          true,
        );
        expect(second.deleteObject('networking.istio.io/v1', 'VirtualService', 'bookinfo', 'kept')).toBe(
          false,
        );
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
