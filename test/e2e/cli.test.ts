import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { freePort } from '../../src/sandbox/processes.ts';
import { eventually } from '../helpers/services.ts';

const VANE = join(import.meta.dirname, '../../bin/vane.mjs');

const MANIFESTS = `
apiVersion: v1
kind: Namespace
metadata: { name: demo }
---
apiVersion: v1
kind: Pod
metadata: { name: web-v2-0, namespace: demo, labels: { app: web, version: v2 } }
spec: { containers: [{ name: web, image: web:v2 }] }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: web, namespace: demo }
spec:
  hosts: [web]
  http:
    - route:
        - destination: { host: web, subset: v1 }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: web, namespace: demo }
spec:
  host: web
  subsets:
    - name: v1
      labels: { app: web, version: v1 }
`;

const SPEC = `
target: { namespace: demo, virtualService: web, destinationRule: web }
stable: { subset: v1 }
canary: { subset: v2, labels: { app: web, version: v2 } }
strategy: { type: canary, steps: [25, 50], stepInterval: 500ms }
analysis: { guardInterval: 250ms }
metadata: { commit: abc123, triggeredBy: e2e }
`;

describe('the vane command', () => {
  it('stops at once with one clear line on an invalid setting', () => {
    const r = spawnSync('node', [VANE, 'all'], { env: { ...process.env, PORT: 'abc' }, encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim()).toBe('vane: invalid setting PORT="abc": expected an integer from 1 to 65535');
  });

  it('start --no-demo: a private Redis and the sandbox (cluster, pods, gateway, Prometheus); kubectl applies objects, a rollout runs from the CLI to success; exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const dataDir = mkdtempSync(join(tmpdir(), 'vane-start-'));
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      VANE_DATA_DIR: dataDir,
      LOG_FORMAT: 'json',
      LOG_LEVEL: 'info',
    };
    delete env.REDIS_URL;
    delete env.KUBECONFIG;
    const child = spawn('node', [VANE, 'start', '--no-demo'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b) => {
      out += b;
    });
    child.stderr.on('data', (b) => {
      out += b;
    });
    try {
      await eventually(async () => {
        const r = await fetch(`http://127.0.0.1:${port}/readyz`);
        return r.status === 200 ? true : undefined;
      }, 30_000);
      // No cluster configured: the sandbox cluster answers the real kubectl.
      const kubeconfig = join(dataDir, 'kubeconfig');
      const kubectl = (...args: string[]) =>
        spawnSync(
          'kubectl',
          ['--kubeconfig', kubeconfig, '--cache-dir', join(dataDir, 'kubectl-cache'), ...args],
          {
            encoding: 'utf8',
            input: args.includes('-') ? MANIFESTS : undefined,
          },
        );
      const applied = kubectl('apply', '-f', '-');
      expect(applied.status, applied.stderr).toBe(0);

      // Preflight through the API: the target is fine; a missing VirtualService is a finding with its code.
      const analyze = async (spec: unknown) =>
        (await fetch(`http://127.0.0.1:${port}/api/v1/analyze`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(spec),
        }).then((r) => r.json())) as { errors: number; findings: { code: string }[] };
      expect((await analyze(parseYaml(SPEC))).errors).toBe(0);
      const missing = parseYaml(SPEC);
      missing.target.virtualService = 'nope';
      const bad = await analyze(missing);
      expect(bad.errors).toBeGreaterThan(0);
      expect(bad.findings.map((f) => f.code)).toContain('VANE0101');

      // A rollout from a YAML file through the CLI and the API, waited for to the end.
      const specFile = join(dataDir, 'rollout.yaml');
      writeFileSync(specFile, SPEC);
      const run = spawn(
        'node',
        [
          VANE,
          'rollout',
          'start',
          '-f',
          specFile,
          '--wait',
          '--timeout',
          '60s',
          '--url',
          `http://127.0.0.1:${port}`,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let cliOut = '';
      run.stdout.on('data', (b) => {
        cliOut += b;
      });
      run.stderr.on('data', (b) => {
        cliOut += b;
      });
      const code = await new Promise<number | null>((r) => run.once('exit', (c) => r(c)));
      expect(code, `${cliOut}\n${out.slice(-3000)}`).toBe(0);
      expect(cliOut).toMatch(/succeeded/);
      const vs = JSON.parse(kubectl('get', 'vs', 'web', '-n', 'demo', '-o', 'json').stdout);
      expect(vs.spec.http[0].route).toEqual([{ destination: { host: 'web', subset: 'v2' }, weight: 100 }]);

      // the service's own metrics saw the cluster calls and the transitions
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/vane_kube_requests_total\{verb="get",code="200"\} [1-9]/);
      expect(metrics).toMatch(/vane_kube_requests_total\{verb="(put|patch)",code="200"\} [1-9]/);
      expect(metrics).toMatch(/vane_rollout_transitions_total\{from="promoting",to="succeeded"\} 1/);
      expect(metrics).toMatch(/vane_rollouts\{phase="succeeded"\} 1/);

      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(out).toContain('"msg":"stopped"');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
