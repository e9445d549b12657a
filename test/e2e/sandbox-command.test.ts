// `vane sandbox` as a user runs it: a child process on a terminal-like process group, the demo to
// its end, the traffic it leaves, Ctrl-C, and a second start on the same data folder.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sampleTraffic } from '../../src/sandbox/mesh/index.ts';
import { freePort } from '../../src/sandbox/processes.ts';
import { eventually } from '../helpers/services.ts';

const VANE = join(import.meta.dirname, '../../bin/vane.mjs');

interface Run {
  child: ChildProcess;
  output(): string;
  /** The processes it started (Redis, Prometheus). */
  children(): number[];
  /** Ctrl-C: SIGINT to the whole process group, as a terminal sends it. */
  interrupt(): Promise<number | null>;
}

function run(args: string[], env: NodeJS.ProcessEnv, cwd: string): Run {
  const child = spawn('node', [VANE, ...args], {
    env,
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout!.on('data', (b) => {
    out += b;
  });
  child.stderr!.on('data', (b) => {
    out += b;
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    child,
    output: () => out,
    children: () =>
      spawnSync('ps', ['-o', 'pid=', '--ppid', String(child.pid)], { encoding: 'utf8' })
        .stdout.split('\n')
        .map((s) => Number(s.trim()))
        .filter((n) => n > 0),
    async interrupt() {
      process.kill(-child.pid!, 'SIGINT');
      return exited;
    },
  };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('vane sandbox, as a user runs it', () => {
  const dir = mkdtempSync(join(process.env.VANE_TEST_RUN_DIR ?? tmpdir(), 'vane-sandbox-cmd-'));
  const runs: Run[] = [];
  afterAll(() => {
    for (const r of runs) if (r.child.exitCode === null) process.kill(-r.child.pid!, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs the demo (v2 promoted, v3 rolled back on its errors), serves, stops everything on Ctrl-C, and starts again on the same data', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(await freePort()), VANE_DATA_DIR: '.vane' };
    for (const k of ['REDIS_URL', 'KUBECONFIG', 'LOG_LEVEL', 'PROMETHEUS_URL']) delete env[k];
    const first = run(['sandbox'], env, dir);
    runs.push(first);
    await eventually(
      async () => (first.output().includes('The sandbox is up') ? true : undefined),
      240_000,
      500,
    );
    const out = first.output();
    expect(out).toMatch(/promoting → succeeded/);
    expect(out).toMatch(/succeeded: reviews v2 takes all the traffic/);
    expect(out).toMatch(/failed: a critical check failed: success rate [\d.]+% < 99%/);
    expect(out).toMatch(/fail +success-rate +success rate/);
    expect(out).toContain('vane rollout start --server');
    const info = JSON.parse(readFileSync(join(dir, '.vane', 'sandbox.json'), 'utf8'));
    expect(Object.keys(info).sort()).toEqual([
      'apiUrl',
      'gatewayUrl',
      'kubeUrl',
      'kubeconfig',
      'prometheusUrl',
    ]);
    expect(info.apiUrl).toBe(`http://127.0.0.1:${env.PORT}`);
    // Users are on v2 after the demo: the rollback of v3 left every request there.
    const s = await sampleTraffic(info.gatewayUrl, { host: 'reviews', namespace: 'bookinfo', n: 200 });
    expect(Object.keys(s.byPod).every((p) => p.startsWith('reviews-v2-'))).toBe(true);
    expect(s.byStatus).toEqual({ 200: 200 });
    expect((await fetch(`${info.apiUrl}/readyz`)).status).toBe(200);
    const kids = first.children();
    expect(kids.length).toBeGreaterThanOrEqual(2); // redis-server and prometheus
    expect(await first.interrupt()).toBe(0);
    expect(first.output()).toContain('stopped');
    for (const pid of kids) expect(alive(pid), `process ${pid} still runs after Ctrl-C`).toBe(false);

    // A second start on the same folder: a stale snapshot (pods with old ports), the old Redis data.
    const second = run(['sandbox', '--no-demo'], env, dir);
    runs.push(second);
    await eventually(
      async () => (second.output().includes('The sandbox is up') ? true : undefined),
      120_000,
      500,
    );
    const again = JSON.parse(readFileSync(join(dir, '.vane', 'sandbox.json'), 'utf8'));
    expect(again.gatewayUrl).not.toBe(info.gatewayUrl);
    // The demo's objects are put back: v1 stable again, its pods answering.
    const s2 = await sampleTraffic(again.gatewayUrl, { host: 'reviews', namespace: 'bookinfo', n: 100 });
    expect(Object.keys(s2.byPod).every((p) => p.startsWith('reviews-v1-'))).toBe(true);
    expect(s2.byStatus).toEqual({ 200: 100 });
    expect(second.output()).toContain('--stable v1 --canary v2');
    expect(await second.interrupt()).toBe(0);
  }, 400_000);
});
