// biome-ignore-all lint/suspicious/noExplicitAny: tests read Kubernetes objects as untyped JSON.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { type KubeSimulator, startKubeSimulator } from '../../../src/sandbox/kube/index.ts';

// A small VirtualService CRD whose rules exercise what the Istio CRDs may use next: a transition
// rule (oldSelf), a Kubernetes library function the evaluator lacks, and a syntax error.
const crd = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'virtualservices.networking.istio.io' },
  spec: {
    group: 'networking.istio.io',
    names: {
      kind: 'VirtualService',
      plural: 'virtualservices',
      singular: 'virtualservice',
      shortNames: ['vs'],
    },
    scope: 'Namespaced',
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: {
                type: 'object',
                'x-kubernetes-preserve-unknown-fields': true,
                properties: {
                  hosts: { type: 'array', items: { type: 'string' } },
                  exportTo: { type: 'array', items: { type: 'string' } },
                },
                'x-kubernetes-validations': [
                  {
                    rule: 'self.hosts == oldSelf.hosts',
                    message: 'hosts cannot change; create a new VirtualService instead',
                  },
                  {
                    rule: 'self.hosts.all(h, h.size() < 20)',
                    message: 'host names must be shorter than 20 characters',
                  },
                  { rule: "self.exportTo.all(n, isCIDR(n) || n == '.')", message: 'unused' },
                  { rule: 'self.hosts.exists(h, h ==', message: 'broken' },
                ],
              },
            },
          },
        },
      },
    ],
  },
};

describe('CEL rules of a CRDs file', () => {
  let sim: KubeSimulator;
  let dir: string;
  const logged: string[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vane-kube-cel-'));
    const file = join(dir, 'crds.yaml');
    writeFileSync(file, stringify(crd));
    sim = await startKubeSimulator({ crdsFile: file, log: (m) => logged.push(m) });
    sim.putObject({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bookinfo' } });
  });
  afterAll(async () => {
    await sim?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists and logs at start every rule it cannot evaluate', () => {
    expect(sim.unevaluatedCelRules).toHaveLength(2);
    expect(sim.unevaluatedCelRules[0]).toContain('isCIDR');
    expect(sim.unevaluatedCelRules[1]).toContain('self.hosts.exists(h, h ==');
    expect(logged.join('\n')).toContain('2 CEL rule(s) of the CRDs cannot be evaluated and are NOT enforced');
  });

  it('evaluates the others, transition rules only on update', async () => {
    const vs = (hosts: string[]) => ({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'reviews', namespace: 'bookinfo' },
      spec: { hosts },
    });
    const path = `${sim.url}/apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices`;
    const post = (body: unknown) =>
      fetch(path, {
        method: 'POST',
        body: JSON.stringify(body),
        headers: { 'Content-Type': 'application/json' },
      });
    const long: any = await (await post(vs(['a-very-long-host-name.example']))).json();
    expect(long.code).toBe(422);
    expect(long.details.causes[0]).toMatchObject({
      field: 'spec',
      message: expect.stringContaining('host names must be shorter than 20 characters'),
    });
    expect((await post(vs(['reviews']))).status).toBe(201);

    const patch = await fetch(`${path}/reviews`, {
      method: 'PATCH',
      body: JSON.stringify({ spec: { hosts: ['ratings'] } }),
      headers: { 'Content-Type': 'application/merge-patch+json' },
    });
    expect(patch.status).toBe(422);
    expect(((await patch.json()) as any).message).toContain(
      'hosts cannot change; create a new VirtualService instead',
    );
  });
});
