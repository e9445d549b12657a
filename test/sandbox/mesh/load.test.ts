import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MeshGateway, startMeshGateway } from '../../../src/sandbox/mesh/gateway.ts';
import { type LoadAnswer, sampleTraffic, startLoad } from '../../../src/sandbox/mesh/load.ts';
import { startTestKube, type TestKube } from '../../helpers/kube.ts';
import { eventually } from '../../helpers/services.ts';
import { destinationRule, service, virtualService } from './fixtures.ts';
import { startTestPod, type TestPod } from './test-pods.ts';

const NS = 'bookinfo';

describe('the load generator through the gateway', () => {
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
    // A/B: requests of end-user jason go to v2, everyone else to v1.
    sim.putObject(
      virtualService('reviews', NS, {
        hosts: ['reviews'],
        http: [
          {
            name: 'ab',
            match: [{ headers: { 'end-user': { exact: 'jason' } } }],
            route: [{ destination: { host: 'reviews', subset: 'v2' } }],
          },
          { name: 'default', route: [{ destination: { host: 'reviews', subset: 'v1' } }] },
        ],
      }),
    );
    gw = await startMeshGateway({ kubeConfig: sim.kubeConfig() });
    await eventually(async () => (gw.table().endpoints.get(NS)?.length === 2 ? true : undefined));
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.all(pods.map((p) => p.close()));
    await kube?.stop();
  });

  it('sends a steady rate with a share of requests carrying the test header, and counts answers by pod', async () => {
    const answers: LoadAnswer[] = [];
    const load = startLoad({
      gatewayUrl: gw.url,
      targets: [{ host: 'reviews', namespace: NS }],
      rate: 100,
      testHeader: { name: 'end-user', value: 'jason', share: 0.25 },
      durationMs: 3_000,
      onAnswer: (a) => answers.push(a),
    });
    await load.done;
    const s = load.stats();
    console.log(`load for 3s at 100 req/s: ${JSON.stringify(s)}`);
    // 300 due: each is sent, or dropped when a stalled machine left the clock over 200 ms behind;
    // a stall at the very end leaves a few unsent when the 3 s are up.
    expect(s.sent + s.dropped).toBeGreaterThanOrEqual(270);
    expect(s.sent + s.dropped).toBeLessThanOrEqual(302);
    // How many were dropped rather than sent depends on how the machine stalls; most are sent.
    expect(s.sent).toBeGreaterThan(s.dropped);
    // Each sent request is answered or counted failed (a starved machine times a few out).
    expect(s.completed + s.failed).toBe(s.sent);
    expect(s.failed).toBeLessThan(0.1 * s.sent);
    const v1 = pods[0]!.name;
    const v2 = pods[1]!.name;
    const test = s.testByPod[v2] ?? 0;
    // Every test-header request went to v2 and nothing else did.
    expect(Object.keys(s.testByPod)).toEqual([v2]);
    expect(s.byPod[v2]).toBe(test);
    expect(s.byPod[v1]).toBe(s.completed - test);
    expect(Math.abs(test / s.completed - 0.25)).toBeLessThan(0.1);
    // Every answer was also told to onAnswer, with its pod and whether it carried the header.
    expect(answers.length).toBe(s.completed);
    expect(answers.filter((a) => a.test).every((a) => a.pod === v2 && a.status === 200)).toBe(true);
  });

  it('stops at maxRequests, can change its rate, and refuses a rate it cannot keep', async () => {
    const load = startLoad({
      gatewayUrl: gw.url,
      targets: [{ host: 'reviews', namespace: NS }],
      rate: 200,
      maxRequests: 25,
    });
    await load.done;
    expect(load.stats().sent).toBe(25);
    expect(() => startLoad({ gatewayUrl: gw.url, targets: [{ host: 'reviews' }], rate: 0 })).toThrow(
      /load rate 0 must be a number of requests per second above 0 and at most 2000/,
    );
    expect(() => startLoad({ gatewayUrl: gw.url, targets: [] })).toThrow(
      /give from 1 to 100 target hosts \(got 0\)/,
    );
    expect(() => startLoad({ gatewayUrl: gw.url, targets: [{ host: 'reviews', weight: -1 }] })).toThrow(
      /targets\[0\] needs a host and a weight >= 0/,
    );
    expect(() => startLoad({ gatewayUrl: gw.url, targets: [{ host: 'reviews' }], maxInFlight: 0 })).toThrow(
      /maxInFlight 0 must be a whole number from 1 to 10000/,
    );
    expect(() => startLoad({ gatewayUrl: 'localhost:1', targets: [{ host: 'reviews' }] })).toThrow(
      /gatewayUrl must be the gateway's http:\/\/ URL/,
    );

    const slow = startLoad({ gatewayUrl: gw.url, targets: [{ host: 'reviews', namespace: NS }], rate: 20 });
    await new Promise((r) => setTimeout(r, 500));
    slow.setRate(200);
    slow.reset();
    const from = performance.now();
    await new Promise((r) => setTimeout(r, 1_000));
    await slow.stop();
    // The rate over the time it really ran (a loaded machine wakes the test late, and a stall just
    // before stop() goes uncounted): well above the old 20 req/s, never above the new 200.
    const seconds = (performance.now() - from) / 1000;
    const { sent, dropped } = slow.stats();
    expect(sent + dropped).toBeGreaterThan(3 * 20 * seconds);
    expect(sent + dropped).toBeLessThanOrEqual(200 * seconds + 3);
  });

  it('samples where n requests go, with or without the test header', async () => {
    const plain = await sampleTraffic(gw.url, { host: 'reviews.bookinfo', n: 50 });
    expect(plain).toEqual({ byPod: { [pods[0]!.name]: 50 }, byStatus: { 200: 50 }, failed: 0 });
    const jason = await sampleTraffic(gw.url, {
      host: 'reviews',
      namespace: NS,
      headers: { 'end-user': 'jason' },
      n: 30,
    });
    expect(jason.byPod).toEqual({ [pods[1]!.name]: 30 });
    await expect(sampleTraffic(gw.url, { host: 'reviews', n: 0 })).rejects.toThrow(/sample n 0 must be/);
  });
});
