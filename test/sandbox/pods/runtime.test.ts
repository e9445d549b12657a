// biome-ignore-all lint/suspicious/noExplicitAny: tests read Kubernetes objects as untyped JSON.
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKubeClients } from '../../../src/mesh/kube-router.ts';
import { endpointsOf } from '../../../src/sandbox/pods/index.ts';
import { startTestKube, type TestKube } from '../../helpers/kube.ts';
import { eventually } from '../../helpers/services.ts';

const NAME_CHARS = '[bcdfghjklmnpqrstvwxz2456789]';

function deployment(
  name: string,
  opts: { replicas?: number; labels?: Record<string, string>; annotations?: Record<string, string> } = {},
): string {
  const labels = opts.labels ?? { app: name };
  const yamlMap = (m: Record<string, string>, indent: string) =>
    Object.entries(m)
      .map(([k, v]) => `${indent}${k}: ${JSON.stringify(v)}`)
      .join('\n');
  return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
  namespace: default
spec:
  replicas: ${opts.replicas ?? 1}
  selector:
    matchLabels:
${yamlMap(labels, '      ')}
  template:
    metadata:
      labels:
${yamlMap(labels, '        ')}
${opts.annotations ? `      annotations:\n${yamlMap(opts.annotations, '        ')}\n` : ''}    spec:
      containers:
      - name: app
        image: example.com/${name}:1.0
        ports:
        - containerPort: 9080
`;
}

interface Answer {
  status: number;
  pod: string | undefined;
  body: any;
  ms: number;
}

/** One GET to a pod's demo app (a fresh connection each time, 5 s deadline). */
function get(port: number, path = '/'): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: 5_000 }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => {
        text += c.toString();
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          pod: res.headers['x-sandbox-pod'] as string | undefined,
          body: JSON.parse(text),
          ms: performance.now() - started,
        }),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from 127.0.0.1:${port} within 5 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** Resolves true when nothing listens on the port any more. */
function refused(port: number): Promise<boolean> {
  return get(port).then(
    () => false,
    (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED',
  );
}

function podsOf(k: TestKube, prefix: string): any[] {
  return k.sim.listObjects('v1', 'Pod', 'default').filter((p) => p.metadata.name.startsWith(`${prefix}-`));
}

function readyPods(k: TestKube, prefix: string, count: number): any[] | undefined {
  const pods = podsOf(k, prefix);
  const ready = pods.filter(
    (p) =>
      p.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True') &&
      p.metadata.annotations?.['sandbox.vane.dev/port'],
  );
  return ready.length === count && pods.length === count ? ready : undefined;
}

const portOf = (p: any) => Number(p.metadata.annotations['sandbox.vane.dev/port']);

async function apply(k: TestKube, yaml: string): Promise<void> {
  const r = await k.kubectl(['apply', '-f', '-'], { input: yaml });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
}

describe('pod runtime: Deployments run as pods of demo apps', () => {
  let k: TestKube;
  beforeAll(async () => {
    k = await startTestKube({ pods: true });
  });
  afterAll(async () => {
    await k?.stop();
  });

  it('names pods as Kubernetes does, marks them Ready and fills the Deployment status vane waits on', async () => {
    const started = Date.now();
    await apply(k, deployment('reviews-v1', { replicas: 3, labels: { app: 'reviews', version: 'v1' } }));
    const rollout = await k.kubectl(['rollout', 'status', 'deployment/reviews-v1', '--timeout=20s']);
    expect(rollout.stdout).toContain('successfully rolled out');
    const pods = await eventually(async () => readyPods(k, 'reviews-v1', 3));
    console.log(`3 pods Ready ${Date.now() - started} ms after kubectl apply started (kubectl included)`);

    const rs = k.sim.listObjects('apps/v1', 'ReplicaSet', 'default');
    expect(rs).toHaveLength(1);
    const hash = rs[0].metadata.labels['pod-template-hash'];
    expect(hash).toMatch(new RegExp(`^${NAME_CHARS}{10}$`));
    expect(rs[0].metadata.name).toBe(`reviews-v1-${hash}`);
    const d = k.sim.getObject('apps/v1', 'Deployment', 'default', 'reviews-v1');
    expect(rs[0].metadata.ownerReferences).toEqual([
      expect.objectContaining({
        kind: 'Deployment',
        name: 'reviews-v1',
        uid: d.metadata.uid,
        controller: true,
      }),
    ]);
    for (const p of pods) {
      expect(p.metadata.name).toMatch(new RegExp(`^reviews-v1-${hash}-${NAME_CHARS}{5}$`));
      expect(p.metadata.labels).toEqual({ app: 'reviews', version: 'v1', 'pod-template-hash': hash });
      expect(p.metadata.ownerReferences[0]).toMatchObject({ kind: 'ReplicaSet', uid: rs[0].metadata.uid });
      expect(p.status.phase).toBe('Running');
      expect(p.status.podIP).toBe('127.0.0.1');
      for (const type of ['Ready', 'ContainersReady'])
        expect(p.status.conditions).toContainEqual(expect.objectContaining({ type, status: 'True' }));
      expect(p.status.containerStatuses[0]).toMatchObject({ name: 'app', ready: true, restartCount: 0 });
    }
    expect(new Set(pods.map(portOf)).size).toBe(3);

    expect(d.status).toMatchObject({
      observedGeneration: d.metadata.generation,
      replicas: 3,
      readyReplicas: 3,
      availableReplicas: 3,
      updatedReplicas: 3,
    });
    expect(d.status.conditions).toEqual([
      expect.objectContaining({ type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable' }),
      expect.objectContaining({ type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable' }),
    ]);
    // vane's engine reads readiness exactly so.
    const clients = createKubeClients({ kubeConfig: k.sim.kubeConfig(), backoffMs: 5 });
    expect(await clients.readWorkload('default', 'Deployment', 'reviews-v1')).toMatchObject({
      ready: true,
      desired: 3,
    });
    const listed = await clients.listPods('default', { app: 'reviews', version: 'v1' });
    expect(listed).toHaveLength(3);

    const table = await k.kubectl(['get', 'pods']);
    expect(table.stdout).toMatch(/reviews-v1-\S+\s+1\/1\s+Running\s+0\s+127\.0\.0\.1/);
  });

  it('every pod answers every request with its JSON and the x-sandbox-pod header', async () => {
    const pods = readyPods(k, 'reviews-v1', 3)!;
    for (const p of pods) {
      const a = await get(portOf(p), '/reviews/7?x=1');
      expect(a.status).toBe(200);
      expect(a.pod).toBe(p.metadata.name);
      expect(a.body).toEqual({
        pod: p.metadata.name,
        namespace: 'default',
        labels: p.metadata.labels,
        path: '/reviews/7?x=1',
      });
    }
  });

  it('a Service selects ready pods by labels (endpointsOf)', async () => {
    await apply(
      k,
      `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
`,
    );
    const eps = endpointsOf(k.sim, 'default', 'reviews')!;
    expect(eps.map((e) => e.pod).sort()).toEqual(
      readyPods(k, 'reviews-v1', 3)!
        .map((p) => p.metadata.name)
        .sort(),
    );
    for (const e of eps)
      expect(e).toMatchObject({ ip: '127.0.0.1', labels: { app: 'reviews', version: 'v1' } });
    expect(endpointsOf(k.sim, 'default', 'ratings')).toBeUndefined();
  });

  it('answers 500 at the rate of sandbox.vane.dev/error-rate (0.3 over 400 requests)', async () => {
    await apply(k, deployment('flaky', { annotations: { 'sandbox.vane.dev/error-rate': '0.3' } }));
    const [pod] = await eventually(async () => readyPods(k, 'flaky', 1));
    let errors = 0;
    for (let i = 0; i < 400; i++) {
      const a = await get(portOf(pod));
      expect([200, 500]).toContain(a.status);
      expect(a.pod).toBe(pod.metadata.name);
      if (a.status === 500) errors++;
    }
    // 400 draws at p = 0.3: mean 120, standard deviation 9.2; ±45 is ±4.9 sd.
    console.log(`error-rate 0.3: ${errors}/400 answered 500`);
    expect(errors).toBeGreaterThanOrEqual(75);
    expect(errors).toBeLessThanOrEqual(165);
  });

  it('kubectl annotate deployment --overwrite changes the latency within 2 s, with a tail', async () => {
    await apply(k, deployment('slow'));
    const [before] = await eventually(async () => readyPods(k, 'slow', 1));
    const quick: number[] = [];
    for (let i = 0; i < 20; i++) quick.push((await get(portOf(before))).ms);

    const r = await k.kubectl([
      'annotate',
      'deployment',
      'slow',
      'sandbox.vane.dev/latency-ms=120',
      '--overwrite',
    ]);
    expect(r.code).toBe(0);
    const changedAt = Date.now();
    // Switched: the only ready endpoint is a new pod, and the old one no longer listens.
    const [after] = await eventually(
      async () => {
        const pods = readyPods(k, 'slow', 1);
        return pods && pods[0].metadata.uid !== before.metadata.uid ? pods : undefined;
      },
      5_000,
      20,
    );
    await eventually(async () => ((await refused(portOf(before))) ? true : undefined), 5_000, 20);
    const switchMs = Date.now() - changedAt;
    console.log(`latency annotation switched to new pods ${switchMs} ms after kubectl annotate returned`);
    expect(switchMs).toBeLessThan(2_000);
    expect(after.metadata.annotations['sandbox.vane.dev/latency-ms']).toBe('120');

    const slow: number[] = [];
    for (let batch = 0; batch < 6; batch++)
      slow.push(
        ...(await Promise.all(Array.from({ length: 10 }, () => get(portOf(after))))).map((a) => a.ms),
      );
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const sorted = [...slow].sort((a, b) => a - b);
    const p50 = sorted[30]!;
    const p95 = sorted[57]!;
    console.log(
      `latency: before mean ${mean(quick).toFixed(1)} ms; after mean ${mean(slow).toFixed(1)} ms, p50 ${p50.toFixed(0)}, p95 ${p95.toFixed(0)}`,
    );
    expect(mean(quick)).toBeLessThan(40);
    // Log-normal with mean 120 ms: the mean of 60 draws has sd ≈ 8 ms; the machine adds its own delay.
    expect(mean(slow)).toBeGreaterThan(85);
    expect(mean(slow)).toBeLessThan(300);
    // The tail: p95 ≈ 2.3 × p50 for the distribution; 1.4 leaves room for sampling.
    expect(p95).toBeGreaterThan(1.4 * p50);
  });

  it('kubectl patch of the template annotation takes effect within 2 s', async () => {
    const [before] = readyPods(k, 'flaky', 1)!;
    const r = await k.kubectl([
      'patch',
      'deployment',
      'flaky',
      '-p',
      JSON.stringify({
        spec: { template: { metadata: { annotations: { 'sandbox.vane.dev/error-rate': '1' } } } },
      }),
    ]);
    expect(r.code).toBe(0);
    const patchedAt = Date.now();
    const [after] = await eventually(
      async () => {
        const pods = readyPods(k, 'flaky', 1);
        return pods && pods[0].metadata.uid !== before.metadata.uid ? pods : undefined;
      },
      5_000,
      20,
    );
    await eventually(async () => ((await refused(portOf(before))) ? true : undefined), 5_000, 20);
    const ms = Date.now() - patchedAt;
    console.log(`error-rate patch switched to new pods ${ms} ms after kubectl patch returned`);
    expect(ms).toBeLessThan(2_000);
    for (let i = 0; i < 20; i++) expect((await get(portOf(after))).status).toBe(500);
    const d = k.sim.getObject('apps/v1', 'Deployment', 'default', 'flaky');
    expect(d.status).toMatchObject({
      observedGeneration: 2,
      replicas: 1,
      updatedReplicas: 1,
      readyReplicas: 1,
    });
    expect(
      k.sim
        .listObjects('apps/v1', 'ReplicaSet', 'default')
        .filter((rs) => rs.metadata.name.startsWith('flaky-')),
    ).toHaveLength(2);
  });

  it('a bad annotation keeps the pod not Ready, saying which annotation and how to fix it', async () => {
    await apply(k, deployment('broken', { annotations: { 'sandbox.vane.dev/error-rate': 'lots' } }));
    const pod = await eventually(async () => {
      const p = podsOf(k, 'broken')[0];
      return p?.status?.containerStatuses?.[0]?.state?.waiting ? p : undefined;
    });
    expect(pod.status.containerStatuses[0].state.waiting.reason).toBe('CreateContainerConfigError');
    expect(pod.status.containerStatuses[0].state.waiting.message).toContain('sandbox.vane.dev/error-rate');
    expect(pod.status.containerStatuses[0].state.waiting.message).toContain('kubectl annotate --overwrite');
    expect(pod.metadata.annotations['sandbox.vane.dev/port']).toBeUndefined();
    const d = k.sim.getObject('apps/v1', 'Deployment', 'default', 'broken');
    expect(d.status).toMatchObject({ replicas: 1, readyReplicas: 0, unavailableReplicas: 1 });
    expect(k.sim.pods!.running().some((r) => r.name === pod.metadata.name)).toBe(false);
  });

  it('a deleted pod is replaced by its ReplicaSet; a bare Pod runs too', async () => {
    const [old] = readyPods(k, 'slow', 1)!;
    expect((await k.kubectl(['delete', 'pod', old.metadata.name])).code).toBe(0);
    const [fresh] = await eventually(async () => {
      const pods = readyPods(k, 'slow', 1);
      return pods && pods[0].metadata.name !== old.metadata.name ? pods : undefined;
    });
    expect(fresh.metadata.labels['pod-template-hash']).toBe(old.metadata.labels['pod-template-hash']);
    await eventually(async () => ((await refused(portOf(old))) ? true : undefined), 5_000);

    await apply(
      k,
      `apiVersion: v1
kind: Pod
metadata: {name: bare, namespace: default, labels: {app: bare}}
spec: {containers: [{name: app, image: bare:1}]}
`,
    );
    const bare = await eventually(async () => {
      const p = k.sim.getObject('v1', 'Pod', 'default', 'bare');
      return p?.metadata.annotations?.['sandbox.vane.dev/port'] ? p : undefined;
    });
    expect((await get(portOf(bare))).body.labels).toEqual({ app: 'bare' });
  });

  it('kubectl annotate pod changes that running pod in place, without a new pod', async () => {
    const [pod] = readyPods(k, 'slow', 1)!;
    const r = await k.kubectl([
      'annotate',
      'pod',
      pod.metadata.name,
      'sandbox.vane.dev/latency-ms=0',
      'sandbox.vane.dev/error-rate=1',
      '--overwrite',
    ]);
    expect(r.code).toBe(0);
    const at = Date.now();
    await eventually(async () => ((await get(portOf(pod))).status === 500 ? true : undefined), 5_000, 20);
    console.log(`pod annotation took effect in the running pod ${Date.now() - at} ms after kubectl returned`);
    expect(Date.now() - at).toBeLessThan(2_000);
    expect(readyPods(k, 'slow', 1)![0].metadata.uid).toBe(pod.metadata.uid);
  });

  it('a crashed demo app makes its pod not Ready, then restarts with restartCount 1', async () => {
    const [pod] = readyPods(k, 'slow', 1)!;
    expect(await k.sim.pods!.crash('default', pod.metadata.name)).toBe(true);
    const down = await eventually(
      async () => {
        const p = k.sim.getObject('v1', 'Pod', 'default', pod.metadata.name);
        return p.status.containerStatuses[0].state.waiting ? p : undefined;
      },
      5_000,
      20,
    );
    expect(down.status.containerStatuses[0].state.waiting.reason).toBe('CrashLoopBackOff');
    expect(down.metadata.annotations['sandbox.vane.dev/port']).toBeUndefined();
    const up = await eventually(async () => readyPods(k, 'slow', 1), 10_000);
    expect(up[0].metadata.uid).toBe(pod.metadata.uid);
    expect(up[0].status.containerStatuses[0].restartCount).toBe(1);
    expect((await get(portOf(up[0]))).pod).toBe(pod.metadata.name);
    expect(await k.sim.pods!.crash('default', 'no-such-pod')).toBe(false);
  });

  it('kubectl rollout restart rolls new pods; rollout undo brings back the first ReplicaSet', async () => {
    await apply(k, deployment('undo'));
    const [first] = await eventually(async () => readyPods(k, 'undo', 1));
    const hash = first.metadata.labels['pod-template-hash'];
    expect((await k.kubectl(['rollout', 'restart', 'deployment/undo'])).code).toBe(0);
    const status = await k.kubectl(['rollout', 'status', 'deployment/undo', '--timeout=20s']);
    expect(status.stdout).toContain('successfully rolled out');
    const [restarted] = await eventually(async () => {
      const pods = readyPods(k, 'undo', 1);
      return pods && pods[0].metadata.labels['pod-template-hash'] !== hash ? pods : undefined;
    });
    const history = await k.kubectl(['rollout', 'history', 'deployment/undo']);
    expect(history.stdout).toMatch(/1\s+<none>\s+2\s+<none>/);
    expect((await k.kubectl(['rollout', 'undo', 'deployment/undo'])).code).toBe(0);
    const [back] = await eventually(async () => {
      const pods = readyPods(k, 'undo', 1);
      return pods && pods[0].metadata.labels['pod-template-hash'] === hash ? pods : undefined;
    });
    expect(back.metadata.name).not.toBe(first.metadata.name);
    await eventually(async () => ((await refused(portOf(restarted))) ? true : undefined), 5_000);
    const rs = k.sim
      .listObjects('apps/v1', 'ReplicaSet', 'default')
      .filter((r) => r.metadata.name.startsWith('undo-'));
    expect(rs.map((r) => [r.metadata.name, r.spec.replicas]).sort()).toEqual(
      [
        [`undo-${hash}`, 1],
        [`undo-${restarted.metadata.labels['pod-template-hash']}`, 0],
      ].sort(),
    );
  });

  it('kubectl scale refuses a bad replica count, naming the field', async () => {
    const r = await k.kubectl(['scale', 'deployment/flaky', '--replicas=20000']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('spec.replicas');
    const scale = await k.kubectl([
      'get',
      '--raw',
      '/apis/apps/v1/namespaces/default/deployments/flaky/scale',
    ]);
    expect(JSON.parse(scale.stdout)).toMatchObject({
      kind: 'Scale',
      spec: { replicas: 1 },
      status: { replicas: 1, selector: 'app=flaky' },
    });
  });

  it('kubectl scale 3 → 1 stops two pods; deleting the Deployment stops the rest', async () => {
    const three = readyPods(k, 'reviews-v1', 3)!;
    const r = await k.kubectl(['scale', 'deployment/reviews-v1', '--replicas=1']);
    expect(r.stdout).toContain('scaled');
    const [left] = await eventually(async () => readyPods(k, 'reviews-v1', 1));
    const gone = three.filter((p) => p.metadata.uid !== left.metadata.uid);
    expect(gone).toHaveLength(2);
    for (const p of gone)
      await eventually(async () => ((await refused(portOf(p))) ? true : undefined), 5_000);
    expect((await get(portOf(left))).pod).toBe(left.metadata.name);
    const d = await eventually(async () => {
      const o = k.sim.getObject('apps/v1', 'Deployment', 'default', 'reviews-v1');
      return o.status.replicas === 1 ? o : undefined;
    });
    expect(d.spec.replicas).toBe(1);
    expect(d.status).toMatchObject({
      replicas: 1,
      readyReplicas: 1,
      availableReplicas: 1,
      updatedReplicas: 1,
    });
    expect(k.sim.pods!.running().filter((p) => p.name.startsWith('reviews-v1-'))).toHaveLength(1);

    const del = await k.kubectl(['delete', 'deployment', 'reviews-v1']);
    expect(del.code).toBe(0);
    await eventually(async () => (podsOf(k, 'reviews-v1').length === 0 ? true : undefined), 5_000);
    await eventually(async () => ((await refused(portOf(left))) ? true : undefined), 5_000);
    expect(
      k.sim
        .listObjects('apps/v1', 'ReplicaSet', 'default')
        .some((rs) => rs.metadata.name.startsWith('reviews-v1-')),
    ).toBe(false);
    expect(k.sim.pods!.running().filter((p) => p.name.startsWith('reviews-v1-'))).toHaveLength(0);
    expect(endpointsOf(k.sim, 'default', 'reviews')).toEqual([]);
  });
});

describe('pod runtime: limits', () => {
  it('refuses bad options, naming them', async () => {
    await expect(startTestKube({ pods: { maxPods: 0 } })).rejects.toThrow(
      /pods\.maxPods must be an integer from 1/,
    );
    await expect(startTestKube({ pods: { maxpods: 3 } as never })).rejects.toThrow(
      /unknown option 'maxpods'/,
    );
  });

  it('runs at most maxPods demo apps; the rest stay Pending, Unschedulable, saying why', async () => {
    const k = await startTestKube({ pods: { maxPods: 2 } });
    try {
      await apply(k, deployment('crowd', { replicas: 3 }));
      const pending = await eventually(async () =>
        podsOf(k, 'crowd').find((p) =>
          p.status?.conditions?.some((c: any) => c.type === 'PodScheduled' && c.reason === 'Unschedulable'),
        ),
      );
      expect(pending.status.conditions[0].message).toContain('pods.maxPods');
      expect(k.sim.pods!.running()).toHaveLength(2);
      const d = k.sim.getObject('apps/v1', 'Deployment', 'default', 'crowd');
      expect(d.status.readyReplicas).toBeLessThanOrEqual(2);

      // Pod objects are capped too (10 × maxPods in all): the ReplicaSet says why it made fewer.
      await apply(k, deployment('horde', { replicas: 50 }));
      const rs = await eventually(async () =>
        k.sim
          .listObjects('apps/v1', 'ReplicaSet', 'default')
          .find((r) => r.metadata.name.startsWith('horde-') && r.status?.conditions?.length),
      );
      expect(rs.status.conditions[0]).toMatchObject({ type: 'ReplicaFailure', reason: 'FailedCreate' });
      expect(rs.status.conditions[0].message).toContain('pods.maxPods');
      expect(k.sim.listObjects('v1', 'Pod', 'default')).toHaveLength(20);
    } finally {
      await k.stop();
    }
  });
});

describe('pod runtime: closing the simulator', () => {
  it('stops every demo app and leaves no process or thread behind', async () => {
    const threadsBefore = readdirSync('/proc/self/task').length;
    const k = await startTestKube({ pods: true });
    await apply(k, deployment('many', { replicas: 5 }));
    const pods = await eventually(async () => readyPods(k, 'many', 5));
    expect(k.sim.pods!.running()).toHaveLength(5);
    await k.stop();
    expect(k.sim.pods!.running()).toEqual([]);
    for (const p of pods) expect(await refused(portOf(p))).toBe(true);
    // No child process (kubectl has exited) and the worker threads are gone.
    const children = execFileSync('ps', ['-o', 'pid=,comm=', '--ppid', String(process.pid)])
      .toString()
      .trim();
    expect(children.split('\n').filter((l) => l.trim() && !/\bps$/.test(l.trim()))).toEqual([]);
    const threadsAfter = readdirSync('/proc/self/task').length;
    expect(threadsAfter).toBeLessThanOrEqual(threadsBefore + 1);
  });
});
