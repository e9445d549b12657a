// biome-ignore-all lint/suspicious/noExplicitAny: tests read Kubernetes objects as untyped JSON.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../src/sandbox/processes.ts';
import { eventually } from '../../helpers/services.ts';

function run(args: string[], input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('kubectl', args);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.stdin.end(input);
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, stdout, stderr });
    });
  });
}

const DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
metadata: {name: hello, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec: {containers: [{name: hello, image: hello:1}]}
`;

describe('vane sandbox kube --pods', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vane-pods-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function start(port: number): Promise<{ child: ChildProcess; kubectl: typeof run }> {
    const child = spawn(process.execPath, [
      'bin/vane.mjs',
      'sandbox',
      'kube',
      '--pods',
      '--port',
      String(port),
      '--snapshot',
      join(dir, 'snap.json'),
    ]);
    let stdout = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    const kubeconfig = await eventually(
      async () => (stdout.includes('current-context') ? stdout : undefined),
      30_000,
    );
    writeFileSync(join(dir, 'kubeconfig'), kubeconfig);
    const base = ['--kubeconfig', join(dir, 'kubeconfig'), '--cache-dir', join(dir, 'cache')];
    return { child, kubectl: (args, input) => run([...base, ...args], input) };
  }

  /** Polled over plain HTTP: a kubectl process per poll would cost more than the wait. */
  async function readyPods(port: number): Promise<any[]> {
    return eventually(async () => {
      const res = await fetch(
        `http://127.0.0.1:${port}/api/v1/namespaces/default/pods?labelSelector=app%3Dhello`,
        {
          signal: AbortSignal.timeout(5_000),
        },
      );
      const items = ((await res.json()) as any).items as any[];
      const ready = items.filter((p) =>
        p.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True'),
      );
      return ready.length === 2 && items.length === 2 ? ready : undefined;
    }, 20_000);
  }

  async function stop(child: ChildProcess): Promise<number | null> {
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    return exited;
  }

  const answers = async (p: any) => {
    const res = await fetch(`http://127.0.0.1:${p.metadata.annotations['sandbox.vane.dev/port']}/`, {
      signal: AbortSignal.timeout(5_000),
    });
    return res.headers.get('x-sandbox-pod');
  };

  it('runs the pods of an applied Deployment, stops them on SIGTERM and runs them again from the snapshot', async () => {
    const port = await freePort();
    const first = await start(port);
    let pods: any[];
    try {
      expect((await first.kubectl(['apply', '-f', '-'], DEPLOYMENT)).code).toBe(0);
      pods = await readyPods(port);
      for (const p of pods) expect(await answers(p)).toBe(p.metadata.name);
    } finally {
      expect(await stop(first.child)).toBe(0);
    }
    for (const p of pods) await expect(answers(p)).rejects.toThrow();

    // The same pods come back from the snapshot with new demo apps.
    const second = await start(port);
    try {
      const again = await readyPods(port);
      expect(again.map((p) => p.metadata.name).sort()).toEqual(pods.map((p) => p.metadata.name).sort());
      for (const p of again) expect(await answers(p)).toBe(p.metadata.name);
    } finally {
      expect(await stop(second.child)).toBe(0);
    }
  });
});
