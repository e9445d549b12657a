import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { buildDomain, type Domain, loadKubeConfig } from '../../src/domain.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Recorder } from '../../src/observability/recorder.ts';
import { connectRedis, type Redis } from '../../src/redis.ts';
import { isTerminal } from '../../src/rollouts/phases.ts';
import { sendCommand, startRollout } from '../../src/rollouts/verbs.ts';
import { grantName } from '../../src/sandbox/kube/index.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { afterVerdictProcessor } from '../../src/workers/after-verdict.ts';
import { startWorkers, type WorkerPool } from '../../src/workers/runtime.ts';
import { tickProcessor } from '../../src/workers/ticks.ts';
import { canarySpec, seedTarget } from '../helpers/engine.ts';
import { startTestKube, type TestKube } from '../helpers/kube.ts';
import { eventually, startTestRedis } from '../helpers/services.ts';
import { kustomize } from './render.ts';

const TOKEN = 'vane-sa-token';
const SA_USER = 'system:serviceaccount:vane-system:vane';

describe('the rendered ClusterRole against a whole rollout (simulator enforcing RBAC)', () => {
  const base = kustomize('deploy/base');
  let kube: TestKube;
  let redisServer: ManagedProcess;
  let redis: Redis;
  let blocking: Redis;
  let domain: Domain;
  let pool: WorkerPool;

  beforeAll(async () => {
    redisServer = await startTestRedis();
    kube = await startTestKube({ rbac: { yaml: base.yaml, users: { [TOKEN]: SA_USER } } });
    const dir = mkdtempSync(join(tmpdir(), 'vane-rbac-'));
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, kube.sim.kubeconfigYaml({ token: TOKEN }));
    // Wired as in production (src/domain.ts): router, workload reads, the preflight analyzer.
    const config = loadConfig({
      REDIS_URL: redisServer.url,
      KUBECONFIG: kubeconfig,
      VANE_KEY_PREFIX: `rbac${process.pid}`,
    });
    const logger = createLogger({ level: 'silent' });
    redis = connectRedis(redisServer.url, { role: 'client' });
    domain = buildDomain({
      config,
      redis,
      logger,
      recorder: new Recorder({ defaultMetrics: false }),
      kubeConfig: loadKubeConfig(config)!,
      kubeTimeoutMs: 5_000,
    });
    blocking = connectRedis(redisServer.url, { role: 'worker' });
    pool = startWorkers({
      connection: blocking,
      prefix: config.keyPrefix,
      processors: [tickProcessor(domain.ctx, 10), afterVerdictProcessor(domain.ctx)],
      logger,
    });
  });

  afterAll(async () => {
    await pool?.close();
    await domain?.close();
    await blocking?.quit();
    await redis?.quit();
    await kube?.stop();
    await redisServer?.stop();
  });

  it('refuses what the role does not grant with a Kubernetes 403 Status, and an unknown token with 401', async () => {
    const auth = { Authorization: `Bearer ${TOKEN}` };
    const del = await fetch(`${kube.sim.url}/api/v1/namespaces/default/pods/x`, {
      method: 'DELETE',
      headers: auth,
    });
    expect(del.status).toBe(403);
    expect(await del.json()).toMatchObject({
      kind: 'Status',
      status: 'Failure',
      reason: 'Forbidden',
      code: 403,
      message: `pods "x" is forbidden: User "${SA_USER}" cannot delete resource "pods" in API group "" in the namespace "default"`,
    });
    const secrets = await fetch(`${kube.sim.url}/api/v1/namespaces/vane-system/secrets`, { headers: auth });
    expect(secrets.status).toBe(403);
    const bad = await fetch(`${kube.sim.url}/api/v1/namespaces/default/pods`, {
      headers: { Authorization: 'Bearer nope' },
    });
    expect(bad.status).toBe(401);
    // kubectl sends no token over plain http: it is system:anonymous, bound to nothing.
    const anon = await kube.kubectl(['get', 'virtualservices', '-A']);
    expect(anon.stderr).toContain(
      'forbidden: User "system:anonymous" cannot list resource "virtualservices"',
    );
  });

  it('runs a promoted and an aborted rollout with every call allowed and every grant used', async () => {
    const sim = kube.sim;
    const before = sim.rbacUsage()!;
    // The test above made only refused requests.
    expect(before.grants.every((g) => g.requests === 0)).toBe(true);
    for (const name of ['cart', 'pay']) {
      seedTarget(sim, name);
      for (const version of ['v1', 'v2']) {
        sim.putObject({
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name: `${name}-${version}`, namespace: 'shop' },
          spec: {
            replicas: 2,
            selector: { matchLabels: { app: name, version } },
            template: {
              metadata: { labels: { app: name, version } },
              spec: { containers: [{ name: 'app', image: `${name}:${version}` }] },
            },
          },
        });
        sim.setDeploymentStatus('shop', `${name}-${version}`, {
          observedGeneration: 1,
          replicas: 2,
          readyReplicas: 2,
          updatedReplicas: 2,
          availableReplicas: 2,
        });
      }
    }
    // cart: the old version scaled down at once after the promotion; pay: the canary after the abort.
    // Both write Kubernetes Events on the way.
    const spec = (name: string, stepInterval: string) =>
      canarySpec(name, {
        stable: { subset: 'v1', workload: { name: `${name}-v1` } },
        canary: {
          subset: 'v2',
          labels: { app: name, version: 'v2' },
          workload: { kind: 'Deployment', name: `${name}-v2` },
          scaleDownOnFailure: true,
        },
        strategy: { type: 'canary', steps: [20, 50], stepInterval, scaleDownDelay: 0 },
        // No metric checks: this run is about the Kubernetes calls, not Prometheus.
        analysis: { guardInterval: '250ms', minRequests: 0 },
      });
    const ctx = domain.ctx;
    const cart = (await startRollout({ ctx, input: spec('cart', '300ms') })).rollout;
    const pay = (await startRollout({ ctx, input: spec('pay', '30s') })).rollout;
    // A refused call shows as a rollout that never gets on; say which calls were refused.
    const refused = async <T>(run: () => Promise<T>): Promise<T> => {
      try {
        return await run();
      } catch (e) {
        const denied = sim.rbacUsage()!.denied.slice(before.denied.length);
        throw new Error(`${(e as Error).message}; requests refused: ${JSON.stringify(denied)}`);
      }
    };
    const settle = (id: string) =>
      eventually(async () => {
        const r = await ctx.store.get(id);
        return r && isTerminal(r.phase) ? r : undefined;
      }, 30_000);
    // Abort pay once it has shifted traffic, so the rollback writes both objects back.
    await refused(() =>
      eventually(async () => ((await ctx.store.get(pay.id))?.weights.canary ?? 0) > 0 || undefined, 20_000),
    );
    await sendCommand({ ctx, id: pay.id, type: 'abort', by: 'rbac-test' });
    const [c, p] = await refused(() => Promise.all([settle(cart.id), settle(pay.id)]));
    expect([c.phase, c.reason]).toEqual(['succeeded', expect.any(String)]);
    expect(p.phase).toBe('aborted');
    // The scale-downs ran through deployments/scale, and Events were written on the VirtualServices.
    await refused(() =>
      eventually(async () => {
        const [cr, pr] = await Promise.all([ctx.store.get(cart.id), ctx.store.get(pay.id)]);
        return cr?.after?.state === 'scaled-down' && pr?.after?.state === 'scaled-down' ? true : undefined;
      }, 20_000),
    );
    expect(sim.getObject('apps/v1', 'Deployment', 'shop', 'cart-v1').spec.replicas).toBe(0);
    expect(sim.getObject('apps/v1', 'Deployment', 'shop', 'pay-v2').spec.replicas).toBe(0);
    expect(sim.getObject('apps/v1', 'Deployment', 'shop', 'cart-v2').spec.replicas).toBe(2);
    await eventually(
      async () =>
        sim.listObjects('v1', 'Event', 'shop').some((e: { reason?: string }) => e.reason === 'Promoted') ||
        undefined,
      10_000,
    );
    expect(
      sim.getObject('networking.istio.io/v1', 'VirtualService', 'shop', 'cart').spec.http[1].route,
    ).toEqual([{ destination: { host: 'cart', subset: 'v2' }, weight: 100 }]);

    const usage = sim.rbacUsage()!;
    const unused = usage.grants.filter((g) => g.requests === 0);
    console.log(
      `ClusterRole vane, requests per grant:\n${usage.grants.map((g) => `  ${g.requests.toString().padStart(4)}  ${grantName(g)}`).join('\n')}\n` +
        `grants vane never used: ${unused.length ? unused.map(grantName).join(', ') : 'none'}`,
    );
    expect(usage.denied.slice(before.denied.length)).toEqual([]);
    expect(unused.map(grantName)).toEqual([]);
    // The grants are the role's, not a wildcard that would hide what vane calls.
    expect(usage.grants.map(grantName).sort()).toEqual(
      [
        'ClusterRole vane: get virtualservices.networking.istio.io',
        'ClusterRole vane: list virtualservices.networking.istio.io',
        'ClusterRole vane: watch virtualservices.networking.istio.io',
        'ClusterRole vane: update virtualservices.networking.istio.io',
        'ClusterRole vane: get destinationrules.networking.istio.io',
        'ClusterRole vane: list destinationrules.networking.istio.io',
        'ClusterRole vane: watch destinationrules.networking.istio.io',
        'ClusterRole vane: update destinationrules.networking.istio.io',
        'ClusterRole vane: get deployments.apps',
        'ClusterRole vane: patch deployments/scale.apps',
        'ClusterRole vane: create events',
        'ClusterRole vane: list pods',
      ].sort(),
    );
  });
});
