import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { eventually } from '../helpers/services.ts';
import { startTestApi, type TestApi, targetManifests, VANE } from './harness.ts';

const README = readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8');

/** The first ```yaml block after `heading` in the README. */
function yamlAfter(heading: string): Record<string, unknown> {
  const from = README.indexOf(heading);
  expect(from, heading).toBeGreaterThan(0);
  const m = /```yaml\n([\s\S]*?)```/.exec(README.slice(from));
  return parseYaml(m![1]!);
}

/** Runs a CI script with bash -e, the CLI taken from this checkout. */
function sh(
  script: string,
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; out: string }> {
  const body = script.replaceAll('node .vane-cli/bin/vane.mjs', `node ${VANE}`);
  return new Promise((resolve) => {
    const child = spawn('bash', ['-e', '-c', body], { cwd, env: { ...process.env, ...env } });
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      out += b.toString();
    });
    child.once('close', (code) => resolve({ code, out }));
  });
}

// The README's CI recipes, run as far as they can be here: the deploy with the real kubectl against
// the kube simulator, then the vane step against an API with a real Redis.
describe('the README CI recipes', { timeout: 240_000 }, () => {
  let api: TestApi;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vane-recipes-'));
    api = await startTestApi(['cart', 'gl']);
    env = {
      VANE_URL: api.url,
      KUBECONFIG: api.kube.kubeconfigPath,
      HOME: dir,
      XDG_CONFIG_HOME: join(dir, 'xdg'),
    };
    const res = await fetch(`${api.url}/api/v1/templates`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        name: 'cart',
        spec: {
          target: { namespace: 'demo', virtualService: 'cart', destinationRule: 'cart' },
          stable: { subset: 'v1' },
          canary: { labels: { app: 'cart' } },
          strategy: { type: 'canary', steps: [50], stepInterval: '5s' },
          analysis: { guardInterval: '500ms' },
        },
      }),
    });
    expect(res.status).toBe(201);
    mkdirSync(join(dir, 'k8s'));
    writeFileSync(join(dir, 'k8s', 'cart-v2.yaml'), targetManifests('cart').split('---')[0]!);
  }, 120_000);
  afterAll(async () => {
    await api?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('GitHub Actions: an aborted rollout fails the step (exit 1); the re-run attempt promotes', async () => {
    const job = (
      yamlAfter('GitHub Actions:').jobs as Record<string, { steps: { name?: string; run?: string }[] }>
    ).deploy!;
    const deploy = job.steps.find((s) => s.name === 'Deploy the canary workload')!.run!;
    const release = job.steps.find((s) => s.name?.startsWith('Canary release'))!.run!;
    const gh = {
      ...env,
      GITHUB_SHA: 'abc123',
      GITHUB_SERVER_URL: 'https://github.example',
      GITHUB_REPOSITORY: 'shop/cart',
      GITHUB_RUN_ID: '1001',
      GITHUB_RUN_ATTEMPT: '1',
      GITHUB_JOB: 'deploy',
    };
    const deployed = await sh(deploy, dir, gh);
    expect(deployed.code, deployed.out).toBe(0);

    const first = sh(release, dir, gh);
    const active = await eventually(async () => {
      const r = (await (await fetch(`${api.url}/api/v1/rollouts?namespace=demo&active=true`)).json()) as {
        rollouts: { id: string; spec: { target: { virtualService: string } } }[];
      };
      return r.rollouts.find((x) => x.spec.target.virtualService === 'cart');
    }, 60_000);
    const aborted = await fetch(`${api.url}/api/v1/rollouts/${active.id}/abort`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ reason: 'bad canary' }),
    });
    expect(aborted.status).toBe(202);
    const failed = await first;
    expect(failed.code, failed.out).toBe(1);
    expect(failed.out).toContain('aborted');

    const again = await sh(release, dir, { ...gh, GITHUB_RUN_ATTEMPT: '2' });
    expect(again.code, again.out).toBe(0);
    expect(again.out).toMatch(/phase: +succeeded/);
    const id = /started: (ro-\S+)/.exec(again.out)![1]!;
    const r = (await (await fetch(`${api.url}/api/v1/rollouts/${id}`)).json()) as {
      rollout: {
        spec: { metadata: Record<string, string>; idempotencyKey: string; canary: { labels: unknown } };
      };
    };
    expect(r.rollout.spec.metadata).toMatchObject({
      commit: 'abc123',
      pipelineUrl: 'https://github.example/shop/cart/actions/runs/1001',
    });
    expect(r.rollout.spec.idempotencyKey).toMatch(/^github-1001-2-deploy-/);
    expect(r.rollout.spec.canary.labels).toEqual({ app: 'cart', version: 'v2' });
  });

  it('GitLab CI: the rollout step from the recipe promotes and exits 0', async () => {
    const job = yamlAfter('GitLab CI:').canary as { script: string[] };
    const release = job.script.find((s) => s.includes('rollout start'))!;
    writeFileSync(
      join(dir, 'rollout.yaml'),
      `target: { namespace: demo, virtualService: gl, destinationRule: gl }
stable: { subset: v1 }
canary: { subset: v2, labels: { app: gl, version: v2 } }
strategy: { type: canary, steps: [50], stepInterval: 500ms }
analysis: { guardInterval: 250ms }
`,
    );
    const r = await sh(release, dir, {
      ...env,
      CI_COMMIT_SHA: 'def456',
      CI_PIPELINE_URL: 'https://gitlab.example/shop/cart/-/pipelines/7',
      CI_PIPELINE_ID: '7',
      CI_JOB_ID: '70',
    });
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/phase: +succeeded/);
  });
});
