// biome-ignore-all lint/suspicious/noExplicitAny: tests read Kubernetes objects as untyped JSON.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ServerType, serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApp } from '../../src/api/app.ts';
import { loadConfig } from '../../src/config.ts';
import { buildDomain, type Domain, loadKubeConfig } from '../../src/domain.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Recorder } from '../../src/observability/recorder.ts';
import { connectRedis, type Redis } from '../../src/redis.ts';
import type { Rollout } from '../../src/rollouts/model.ts';
import { isTerminal } from '../../src/rollouts/phases.ts';
import { sendCommand, startRollout } from '../../src/rollouts/verbs.ts';
import { type SandboxMesh, sampleTraffic, startSandboxMesh } from '../../src/sandbox/mesh/index.ts';
import { freePort, type ManagedProcess } from '../../src/sandbox/processes.ts';
import { scaleDownJobId } from '../../src/workers/after-verdict.ts';
import { vane } from '../cli/harness.ts';
import { startTestKube, type TestKube } from '../helpers/kube.ts';
import { eventually, startTestRedis } from '../helpers/services.ts';

/**
 * After the verdict, on the sandbox with real pods: the old version's Deployment scaled to 0 after
 * scaleDownDelay, undo before and after that (judged by where the gateway sends requests as well as
 * by the objects), the canary left alone or scaled down after a rollback, a scale-down that outlives
 * a restart of every vane worker process, and the story in `kubectl get events` / `describe`.
 * The workers are real `vane worker` processes; this process plays the API (the same verbs).
 */

const VANE = join(import.meta.dirname, '../../bin/vane.mjs');
const NS = 'shop';

let redisServer: ManagedProcess;
let kube: TestKube;
let mesh: SandboxMesh;
let redis: Redis;
let domain: Domain;
let dataDir: string;
const prefix = `after${process.pid}`;
let worker: ChildProcess | undefined;
let server: ServerType;
let apiUrl: string;
const token = (name: string) => `${name}-secret-token`;
const tokenEntry = (name: string, scopes: ('read' | 'operate')[]) => ({
  name,
  sha256: createHash('sha256').update(token(name)).digest('hex'),
  scopes,
});
const logs: string[] = [];

function manifest(name: string, v1Replicas: number): string {
  const deployment = (v: string, replicas: number) => `---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}-${v}
spec:
  replicas: ${replicas}
  selector:
    matchLabels: { app: ${name}, version: ${v} }
  template:
    metadata:
      labels: { app: ${name}, version: ${v} }
    spec:
      containers:
      - name: app
        image: shop/${name}:${v}
        ports: [{ containerPort: 9080 }]
`;
  return `apiVersion: v1
kind: Service
metadata:
  name: ${name}
spec:
  selector: { app: ${name} }
  ports: [{ name: http, port: 9080 }]
${deployment('v1', v1Replicas)}${deployment('v2', 1)}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ${name}
spec:
  hosts: [${name}]
  http:
  - name: default
    route:
    - destination: { host: ${name}, subset: v1 }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ${name}
spec:
  host: ${name}
  subsets:
  - name: v1
    labels: { app: ${name}, version: v1 }
`;
}

function spec(name: string, strategy: Record<string, unknown> = {}, canary: Record<string, unknown> = {}) {
  return {
    target: { namespace: NS, virtualService: name, destinationRule: name, routes: ['default'] },
    stable: { subset: 'v1', workload: { name: `${name}-v1` } },
    canary: {
      subset: 'v2',
      labels: { app: name, version: 'v2' },
      workload: { name: `${name}-v2` },
      ...canary,
    },
    strategy: { type: 'canary', steps: [50], stepInterval: '500ms', ...strategy },
    analysis: { guardInterval: '250ms', minRequests: 0 },
  };
}

async function deploy(name: string, v1Replicas = 1): Promise<void> {
  const r = await kube.kubectl(['apply', '-n', NS, '-f', '-'], { input: manifest(name, v1Replicas) });
  expect(r.stderr).toBe('');
  const wait = await kube.kubectl(
    [
      'wait',
      '-n',
      NS,
      '--for=condition=Available',
      `deployment/${name}-v1`,
      `deployment/${name}-v2`,
      '--timeout=30s',
    ],
    { timeoutMs: 40_000 },
  );
  expect(wait.code).toBe(0);
}

/** Which version answered each of n requests through the gateway (pods are named <name>-<version>-...). */
async function versions(name: string, n = 40): Promise<Record<string, number>> {
  const s = await sampleTraffic(mesh.gatewayUrl, { host: name, namespace: NS, n });
  const out: Record<string, number> = {};
  for (const [pod, count] of Object.entries(s.byPod)) {
    const v = pod.startsWith(`${name}-`) ? (pod.slice(name.length + 1).split('-')[0] ?? pod) : pod;
    out[v] = (out[v] ?? 0) + count;
  }
  if (s.failed) out.failed = s.failed;
  return out;
}

/** Waits until every request goes to `version` (the gateway follows the objects through a watch). */
function allTo(name: string, version: string, timeoutMs = 15_000) {
  return eventually(async () => {
    const v = await versions(name, 30);
    return v[version] === 30 ? v : undefined;
  }, timeoutMs);
}

const replicasOf = (name: string) => kube.sim.getObject('apps/v1', 'Deployment', NS, name).spec.replicas;
const runningPods = (name: string, version: string) =>
  kube.sim
    .listObjects('v1', 'Pod', NS)
    .filter((p: any) => p.metadata.labels?.app === name && p.metadata.labels?.version === version).length;

function settle(id: string, timeoutMs = 30_000): Promise<Rollout> {
  return eventually(async () => {
    const r = await domain.ctx.store.get(id);
    return r && isTerminal(r.phase) ? r : undefined;
  }, timeoutMs);
}

function afterState(id: string, state: string, timeoutMs = 20_000): Promise<Rollout> {
  return eventually(async () => {
    const r = await domain.ctx.store.get(id);
    return r?.after?.state === state ? r : undefined;
  }, timeoutMs);
}

async function startWorker(): Promise<void> {
  const port = String(await freePort());
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    REDIS_URL: redisServer.url,
    KUBECONFIG: kube.kubeconfigPath,
    VANE_KEY_PREFIX: prefix,
    PORT: port,
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    LOG_FORMAT: 'json',
  };
  delete env.PROMETHEUS_URL;
  const child = spawn('node', [VANE, 'worker'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => logs.push(String(d)));
  child.stderr!.on('data', (d) => logs.push(String(d)));
  worker = child;
  await eventually(
    async () =>
      (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.ok ? true : undefined,
    60_000,
    100,
  );
}

function killWorker(): Promise<void> {
  const child = worker;
  worker = undefined;
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

describe('after the verdict (sandbox with real pods, real vane worker processes)', () => {
  beforeAll(async () => {
    redisServer = await startTestRedis();
    kube = await startTestKube({ pods: true });
    const ns = await kube.kubectl(['apply', '-f', '-'], {
      input: `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NS}\n`,
    });
    expect(ns.code).toBe(0);
    dataDir = mkdtempSync(join(tmpdir(), 'vane-after-'));
    mesh = await startSandboxMesh({ sim: kube.sim, dataDir, prometheus: false });
    const config = loadConfig({
      REDIS_URL: redisServer.url,
      KUBECONFIG: kube.kubeconfigPath,
      VANE_KEY_PREFIX: prefix,
    });
    redis = connectRedis(redisServer.url, { role: 'client' });
    domain = buildDomain({
      config,
      redis,
      logger: createLogger({ level: 'silent' }),
      recorder: new Recorder({ defaultMetrics: false }),
      kubeConfig: loadKubeConfig(config)!,
      kubeTimeoutMs: 5_000,
    });
    // The API in this process, with scoped tokens: undo needs operate.
    const app = newApp({
      logger: domain.ctx.logger,
      recorder: new Recorder({ defaultMetrics: false }),
      readiness: [],
      domain: domain.ctx,
      scopedTokens: [tokenEntry('reader', ['read']), tokenEntry('oncall', ['read', 'operate'])],
    });
    server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
    });
    apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await startWorker();
  }, 120_000);

  afterAll(async () => {
    await killWorker();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    await domain?.close();
    await redis?.quit();
    await mesh?.close();
    await kube?.stop();
    await redisServer?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('scales the old version to 0 after scaleDownDelay, and undo scales it up again before routing back', async () => {
    await deploy('reviews', 2);
    expect(await versions('reviews')).toEqual({ v1: 40 });
    const { rollout } = await startRollout({
      ctx: domain.ctx,
      input: spec('reviews', { scaleDownDelay: '2s' }),
    });
    const r = await settle(rollout.id);
    expect(r.phase).toBe('succeeded');
    // Promoted: everything on v2, the old version still running inside the delay.
    expect(await allTo('reviews', 'v2')).toEqual({ v2: 30 });
    const scheduled = await afterState(rollout.id, 'scheduled', 5_000).catch(() => undefined);
    const down = await afterState(rollout.id, 'scaled-down', 20_000);
    expect(down.after).toMatchObject({ workload: `Deployment ${NS}/reviews-v1`, replicas: 2 });
    expect(down.after!.scaledDownAt! - r.endedAt!).toBeGreaterThanOrEqual(1_900);
    if (scheduled) expect(scheduled.after!.scaleDownAt! - r.endedAt!).toBeGreaterThanOrEqual(1_900);
    expect(replicasOf('reviews-v1')).toBe(0);
    expect(replicasOf('reviews-v2')).toBe(1);
    await eventually(async () => (runningPods('reviews', 'v1') === 0 ? true : undefined), 15_000);

    // Undo after the scale-down: scaled back to the remembered 2 replicas, ready, then routed.
    const undo = (who: string) =>
      fetch(`${apiUrl}/api/v1/rollouts/${rollout.id}/undo`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token(who)}` },
      });
    const refused = await undo('reader');
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as any).error.message).toContain("lacks the 'operate' scope");
    const res = await undo('oncall');
    expect(res.status).toBe(202);
    expect(((await res.json()) as any).rollout.after).toMatchObject({ state: 'undoing', replicas: 2 });
    const undone = await afterState(rollout.id, 'undone', 40_000);
    expect(replicasOf('reviews-v1')).toBe(2);
    expect(runningPods('reviews', 'v1')).toBe(2);
    expect(undone.weights).toEqual({ stable: 100, canary: 0 });
    expect(undone.after).toMatchObject({ state: 'undone', undoneBy: 'oncall' });
    expect(await allTo('reviews', 'v1')).toEqual({ v1: 30 });
    const vs = kube.sim.getObject('networking.istio.io/v1', 'VirtualService', NS, 'reviews');
    expect(vs.spec.http[0].route).toEqual([{ destination: { host: 'reviews', subset: 'v1' }, weight: 100 }]);
    const events = await domain.ctx.store.events(rollout.id);
    const reasons = events.map((e) => `${e.type}: ${e.reason}`);
    expect(reasons).toContainEqual(
      expect.stringMatching(/^scale: old version Deployment shop\/reviews-v1 scaled to 0 \(had 2 replicas\)/),
    );
    expect(reasons).toContainEqual('command: undo by oncall');
    expect(reasons).toContainEqual(expect.stringMatching(/^scale: .*scaled up to 2 replicas for undo/));
    expect(reasons).toContainEqual(expect.stringMatching(/^undo: 100% back to subset 'v1'/));
    // Undo applies once: 409 naming why.
    const again = await undo('oncall');
    expect(again.status).toBe(409);
    expect(((await again.json()) as any).error.message).toMatch(
      /cannot undo rollout .*: it was undone already/,
    );
  }, 90_000);

  it('undo inside the delay routes back at once (relabel: the stable subset selects v1 again) and cancels the scale-down', async () => {
    await deploy('ratings');
    const { rollout } = await startRollout({
      ctx: domain.ctx,
      input: spec('ratings', { scaleDownDelay: '10m', promotion: 'relabel' }),
    });
    expect((await settle(rollout.id)).phase).toBe('succeeded');
    expect(await allTo('ratings', 'v2')).toEqual({ v2: 30 });
    const scheduled = await afterState(rollout.id, 'scheduled');
    expect(scheduled.after!.scaleDownAt! - scheduled.endedAt!).toBeGreaterThanOrEqual(599_000);
    expect(await domain.after.queue.getJob(scaleDownJobId(rollout.id))).toBeDefined();
    const dr = () => kube.sim.getObject('networking.istio.io/v1', 'DestinationRule', NS, 'ratings');
    expect(dr().spec.subsets.find((s: any) => s.name === 'v1').labels).toEqual({
      app: 'ratings',
      version: 'v2',
    });
    const writesBefore = kube.sim.writeLog().length;

    const cli = await vane(['rollout', 'undo', rollout.id, '--reason', 'slow pages'], {
      env: { VANE_URL: apiUrl, VANE_TOKEN: token('oncall'), NO_COLOR: '1' },
    });
    expect(cli.stderr).toBe('');
    expect(cli.code).toBe(0);
    expect(cli.stdout).toContain(`undo: ${rollout.id}`);
    await afterState(rollout.id, 'undone');
    const events = await domain.ctx.store.events(rollout.id);
    expect(events.map((e) => `${e.type}: ${e.reason}`)).toContain('command: undo by oncall: slow pages');
    expect(await allTo('ratings', 'v1')).toEqual({ v1: 30 });
    expect(dr().spec.subsets.find((s: any) => s.name === 'v1').labels).toEqual({
      app: 'ratings',
      version: 'v1',
    });
    // One write routes it back, and the old version was never scaled.
    const writes = kube.sim
      .writeLog()
      .slice(writesBefore)
      .filter((w) => ['virtualservices', 'destinationrules', 'deployments'].includes(w.resource));
    expect(writes.map((w) => `${w.resource}/${w.name}`)).toEqual(['destinationrules/ratings']);
    expect(replicasOf('ratings-v1')).toBe(1);
    expect(await domain.after.queue.getJob(scaleDownJobId(rollout.id))).toBeUndefined();
  }, 60_000);

  it('after a rollback leaves the canary running by default, and scales it to 0 with scaleDownOnFailure', async () => {
    await Promise.all([deploy('details'), deploy('pricing')]);
    const kept = (await startRollout({ ctx: domain.ctx, input: spec('details', { stepInterval: '30s' }) }))
      .rollout;
    const scaled = (
      await startRollout({
        ctx: domain.ctx,
        input: spec('pricing', { stepInterval: '30s' }, { scaleDownOnFailure: true }),
      })
    ).rollout;
    for (const id of [kept.id, scaled.id]) {
      await eventually(
        async () => ((await domain.ctx.store.get(id))?.weights.canary ?? 0) > 0 || undefined,
        20_000,
      );
      await sendCommand({ ctx: domain.ctx, id, type: 'abort', by: 'test', reason: 'trying rollback' });
    }
    expect((await settle(kept.id)).phase).toBe('aborted');
    expect((await settle(scaled.id)).phase).toBe('aborted');
    expect(await allTo('details', 'v1')).toEqual({ v1: 30 });
    expect(await allTo('pricing', 'v1')).toEqual({ v1: 30 });
    const down = await afterState(scaled.id, 'scaled-down');
    expect(down.after).toMatchObject({ workload: `Deployment ${NS}/pricing-v2`, replicas: 1 });
    expect(replicasOf('pricing-v2')).toBe(0);
    await eventually(async () => (runningPods('pricing', 'v2') === 0 ? true : undefined), 15_000);
    // The default: the CI system owns the canary; vane leaves it as it is.
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await domain.ctx.store.get(kept.id))?.after).toBeUndefined();
    expect(replicasOf('details-v2')).toBe(1);
    expect(runningPods('details', 'v2')).toBe(1);
    // Undo is for succeeded rollouts only: the same table the API reads.
    await expect(domain.ctx.after!.requestUndo(domain.ctx, { id: kept.id })).rejects.toThrow(
      /cannot undo rollout .*: it is aborted; undo applies when it is succeeded/,
    );
  }, 60_000);

  it('a scale-down scheduled before every vane worker process restarts still happens', async () => {
    await deploy('stock');
    const { rollout } = await startRollout({
      ctx: domain.ctx,
      input: spec('stock', { scaleDownDelay: '4s' }),
    });
    await afterState(rollout.id, 'scheduled');
    // Every worker goes (SIGKILL), and is gone past the moment the scale-down was due.
    await killWorker();
    await new Promise((r) => setTimeout(r, 4_500));
    expect(replicasOf('stock-v1')).toBe(1);
    await startWorker();
    const down = await afterState(rollout.id, 'scaled-down', 30_000);
    expect(down.after?.replicas).toBe(1);
    expect(replicasOf('stock-v1')).toBe(0);
    expect(await allTo('stock', 'v2')).toEqual({ v2: 30 });
    // Once another rollout ran on the target, this one can no longer be undone.
    const later = (await startRollout({ ctx: domain.ctx, input: spec('stock') })).rollout;
    await settle(later.id);
    const refused = await fetch(`${apiUrl}/api/v1/rollouts/${rollout.id}/undo`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token('oncall')}` },
    });
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as any).error.message).toContain(
      `rollout ${later.id} (${(await domain.ctx.store.get(later.id))!.phase}) ran on shop/stock since; only the latest rollout of a target can be undone`,
    );
  }, 90_000);

  it('tells the story as Kubernetes Events: kubectl get events and kubectl describe virtualservice', async () => {
    const got = await eventually(async () => {
      const r = await kube.kubectl([
        'get',
        'events',
        '-n',
        NS,
        '--field-selector',
        'involvedObject.name=reviews',
      ]);
      return /Undone/.test(r.stdout) ? r : undefined;
    }, 15_000);
    expect(got.code).toBe(0);
    expect(got.stdout).toMatch(/LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+MESSAGE/);
    for (const reason of ['Progressing', 'Promoted', 'ScaledDown', 'ScaledUp', 'Undone']) {
      expect(got.stdout).toMatch(new RegExp(`Normal\\s+${reason}\\s+virtualservice/reviews\\s+rollout `));
    }
    expect(got.stdout).toMatch(/Promoted\s+virtualservice\/reviews\s+rollout \S+: shop\/reviews v2 promoted/);
    const rolledBack = await kube.kubectl([
      'get',
      'events',
      '-n',
      NS,
      '--field-selector',
      'reason=RolledBack',
    ]);
    expect(rolledBack.stdout).toMatch(/Warning\s+RolledBack\s+virtualservice\/details/);
    const described = await kube.kubectl(['describe', 'virtualservice', 'reviews', '-n', NS]);
    expect(described.code).toBe(0);
    console.log(
      `kubectl describe virtualservice reviews:\n${described.stdout.slice(described.stdout.indexOf('Events:'))}`,
    );
    expect(described.stdout).toMatch(/Events:\s*\n\s+Type\s+Reason\s+Age\s+From\s+Message/);
    expect(described.stdout).toMatch(/Normal\s+Promoted\s+\S+\s+vane\s+rollout /);
    expect(described.stdout).toMatch(/Normal\s+Undone\s+\S+\s+vane\s+rollout /);
    // Events of another VirtualService are not in this one's story.
    expect(described.stdout).not.toMatch(/virtualservice\/ratings|shop\/ratings/);
  }, 30_000);
});
