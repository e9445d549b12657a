import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type KubeSimulator,
  type KubeSimulatorOptions,
  startKubeSimulator,
} from '../../src/sandbox/kube/index.ts';

/** Istio's CRDs sit beside the repository; VANE_ISTIO_CRDS points elsewhere. Absent: the simulator runs without them. */
export function istioCrdsFile(): string | undefined {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const file = process.env.VANE_ISTIO_CRDS ?? resolve(root, '..', 'shared', 'istio', 'crds.gen.yaml');
  return existsSync(file) ? file : undefined;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TestKube {
  sim: KubeSimulator;
  kubeconfigPath: string;
  /** Runs the real kubectl against the simulator (30s timeout). */
  kubectl(args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<KubectlResult>;
  /** Starts kubectl and returns it running (for --watch); call stop() to end it. */
  kubectlStream(args: string[]): { output(): string; stop(): Promise<KubectlResult> };
  stop(): Promise<void>;
}

/** A simulator on a free port with the Istio CRDs when available, a temporary kubeconfig and kubectl cache. */
export async function startTestKube(opts: KubeSimulatorOptions = {}): Promise<TestKube> {
  const crdsFile = opts.crdsFile ?? istioCrdsFile();
  const sim = await startKubeSimulator({ log: () => {}, ...opts, ...(crdsFile ? { crdsFile } : {}) });
  const dir = mkdtempSync(join(tmpdir(), 'vane-kube-'));
  const kubeconfigPath = join(dir, 'kubeconfig');
  writeFileSync(kubeconfigPath, sim.kubeconfigYaml());
  const base = ['--kubeconfig', kubeconfigPath, '--cache-dir', join(dir, 'cache')];

  function run(args: string[], input?: string) {
    const child = spawn('kubectl', [...base, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.stdin.end(input ?? '');
    const done = new Promise<KubectlResult>((res) => {
      child.once('close', (code, signal) => res({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
      child.once('error', (e) => res({ code: 127, stdout, stderr: `${stderr}${e.message}` }));
    });
    return { child, done, output: () => stdout };
  }

  return {
    sim,
    kubeconfigPath,
    async kubectl(args, { input, timeoutMs = 30_000 } = {}) {
      const r = run(args, input);
      const timer = setTimeout(() => r.child.kill('SIGKILL'), timeoutMs);
      const out = await r.done;
      clearTimeout(timer);
      return out;
    },
    kubectlStream(args) {
      const r = run(args);
      return {
        output: r.output,
        stop: async () => {
          r.child.kill('SIGTERM');
          return r.done;
        },
      };
    },
    async stop() {
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
