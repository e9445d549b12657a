import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MeshGateway, startMeshGateway } from '../../../src/sandbox/mesh/gateway.ts';
import { meshRequest } from '../../../src/sandbox/mesh/load.ts';
import { startTestKube, type TestKube } from '../../helpers/kube.ts';
import { eventually } from '../../helpers/services.ts';
import { destinationRule, service, virtualService } from './fixtures.ts';
import { startTestPod, type TestPod } from './test-pods.ts';

const NS = 'bookinfo';

describe('the gateway follows the API server through failing lists and watches', () => {
  let kube: TestKube;
  let gw: MeshGateway;
  const pods: TestPod[] = [];

  beforeAll(async () => {
    kube = await startTestKube();
    const sim = kube.sim;
    sim.putObject(service('reviews', NS, { app: 'reviews' }));
    sim.putObject(
      destinationRule('reviews', NS, 'reviews', { v1: { version: 'v1' }, v2: { version: 'v2' } }),
    );
    pods.push(await startTestPod(sim, 'reviews-v1-5d8f7c-aaaaa', NS, { app: 'reviews', version: 'v1' }));
    pods.push(await startTestPod(sim, 'reviews-v2-6c9e4b-bbbbb', NS, { app: 'reviews', version: 'v2' }));
    sim.putObject(
      virtualService('reviews', NS, {
        hosts: ['reviews'],
        http: [{ route: [{ destination: { host: 'reviews', subset: 'v2' } }] }],
      }),
    );
    // The first two lists of VirtualServices and the first watch of DestinationRules fail.
    sim.setFaults([
      { verb: 'list', resource: 'virtualservices', status: 500, count: 2 },
      { verb: 'watch', resource: 'destinationrules', status: 500, count: 1 },
    ]);
    gw = await startMeshGateway({ kubeConfig: sim.kubeConfig() });
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.all(pods.map((p) => p.close()));
    await kube?.stop();
  });

  it('starts only once every kind is listed, retrying what failed', async () => {
    expect(gw.watch.errors().some((e) => e.startsWith('virtualServices:'))).toBe(true);
    expect(gw.table().virtualServices.map((v) => v.name)).toEqual(['reviews']);
    const a = await meshRequest(gw.url, { host: 'reviews', namespace: NS });
    expect(a.pod).toBe(pods[1]!.name);
  });

  it('keeps following changes after the restarts', async () => {
    kube.sim.putObject(
      destinationRule('reviews', NS, 'reviews', { v1: { version: 'v2' }, v2: { version: 'v1' } }),
    );
    await eventually(
      async () =>
        (await meshRequest(gw.url, { host: 'reviews', namespace: NS })).pod === pods[0]!.name
          ? true
          : undefined,
      10_000,
      50,
    );
    kube.sim.putObject(
      virtualService('reviews', NS, {
        hosts: ['reviews'],
        http: [{ route: [{ destination: { host: 'reviews', subset: 'v1' } }] }],
      }),
    );
    await eventually(
      async () =>
        (await meshRequest(gw.url, { host: 'reviews', namespace: NS })).pod === pods[1]!.name
          ? true
          : undefined,
      10_000,
      50,
    );
  });
});
