import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/observability/logger.ts';
import type { ManagedProcess } from '../../src/sandbox/processes.ts';
import { freePort } from '../../src/sandbox/processes.ts';
import { type RunningService, startService } from '../../src/service.ts';
import { startTestKube, type TestKube } from '../helpers/kube.ts';
import { startTestRedis } from '../helpers/services.ts';

export const VANE = join(import.meta.dirname, '../../bin/vane.mjs');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node bin/vane.mjs ...` as a child process (never spawnSync: the API under test runs in this
 * process). The environment is clean of VANE_* and CI variables unless given; HOME and
 * XDG_CONFIG_HOME point at an empty folder so no user config is read.
 */
export function vane(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(VANE_|GITHUB_|CI_|BUILDKITE|CIRCLE|BUILD_|SYSTEM_|REDIS_URL$|KUBECONFIG$|PORT$|NO_COLOR$)/.test(k))
      continue;
    env[k] = v;
  }
  const home = mkdtempSync(join(tmpdir(), 'vane-cli-home-'));
  Object.assign(env, { HOME: home, XDG_CONFIG_HOME: join(home, '.config') }, opts.env ?? {});
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [VANE, ...args], {
      env,
      cwd: opts.cwd ?? process.cwd(),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.stdin.end(opts.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      rmSync(home, { recursive: true, force: true });
      resolve({ code, stdout, stderr });
    });
  });
}

/** Objects of one target in namespace `demo`: a VirtualService and DestinationRule named `name`, a canary pod. */
export function targetManifests(name: string): string {
  return `
apiVersion: v1
kind: Pod
metadata: { name: ${name}-v2-0, namespace: demo, labels: { app: ${name}, version: v2 } }
spec: { containers: [{ name: app, image: app:v2 }] }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name}, namespace: demo }
spec:
  hosts: [${name}]
  http:
    - route:
        - destination: { host: ${name}, subset: v1 }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ${name}, namespace: demo }
spec:
  host: ${name}
  subsets:
    - name: v1
      labels: { app: ${name}, version: v1 }
`;
}

export interface TestApi {
  url: string;
  kube: TestKube;
  close(): Promise<void>;
}

/** vane's API and workers in this process, on a free port, with a real Redis and the kube simulator holding `targets`. */
export async function startTestApi(targets: string[], opts: { tokens?: string } = {}): Promise<TestApi> {
  const redis: ManagedProcess = await startTestRedis();
  const kube = await startTestKube();
  const applied = await kube.kubectl(['apply', '-f', '-'], {
    input: [
      'apiVersion: v1\nkind: Namespace\nmetadata: { name: demo }\n',
      ...targets.map(targetManifests),
    ].join('\n---\n'),
  });
  if (applied.code !== 0) throw new Error(applied.stderr);
  const port = await freePort();
  const config = loadConfig({
    PORT: String(port),
    HOST: '127.0.0.1',
    REDIS_URL: redis.url,
    KUBECONFIG: kube.kubeconfigPath,
    VANE_KEY_PREFIX: `cli${process.pid}`,
    LOG_LEVEL: 'silent',
    ...(opts.tokens ? { VANE_API_TOKENS: opts.tokens } : {}),
  });
  const service: RunningService = await startService(
    { ...config, redisUrl: redis.url },
    'all',
    createLogger({ level: 'silent' }),
  );
  return {
    url: `http://127.0.0.1:${port}`,
    kube,
    async close() {
      await service.shutdown('test done');
      await kube.stop();
      await redis.stop();
    },
  };
}

/** Runs the CLI on a pseudo-terminal (util-linux `script`), for what only happens on a TTY. */
export function vaneOnTty(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CliResult> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const command = [process.execPath, VANE, ...args].map(quote).join(' ');
  return new Promise((resolve) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      env: { ...process.env, TERM: 'xterm', ...opts.env },
      cwd: opts.cwd ?? process.cwd(),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr: '' });
    });
  });
}
