import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { type CliResult, vane as run, startTestApi, type TestApi, vaneOnTty } from './harness.ts';

const specYaml = (name: string, over = '') => `
target: { namespace: demo, virtualService: ${name}, destinationRule: ${name} }
stable: { subset: v1 }
canary: { subset: v2, labels: { app: ${name}, version: v2 } }
strategy: { type: canary, steps: [25, 50], stepInterval: ${over || '500ms'} }
analysis: { guardInterval: 250ms }
`;

const noTrace = (r: CliResult) => expect(r.stderr).not.toMatch(/^\s+at /m);

// Each CLI run is a Node process starting tsx; on a loaded machine that takes seconds.
describe('vane rollout against a running API', { timeout: 240_000 }, () => {
  let api: TestApi;
  let dir: string;
  const vane = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    run(args, { env: { VANE_URL: api.url, ...env }, cwd: dir });
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vane-cli-'));
    api = await startTestApi(['web', 'slow', 'flags', 'tty']);
  }, 120_000);
  afterAll(async () => {
    await api?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('start -f --wait: exit 0 when the rollout succeeds; plain event lines off a terminal; --output json parsed back', async () => {
    writeFileSync(join(dir, 'web.yaml'), specYaml('web'));
    const r = await vane(['rollout', 'start', '-f', 'web.yaml', '--wait', '--timeout', '60s', '-o', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const final = JSON.parse(r.stdout);
    expect(final.phase).toBe('succeeded');
    expect(final.weights).toEqual({ stable: 0, canary: 100 });
    // progress as plain lines (stderr with -o json): one per event, with the transitions
    expect(r.stderr).toMatch(/^started: ro-\S+ {2}demo\/web/m);
    expect(r.stderr).toMatch(/transition → succeeded/);
    expect(r.stderr).not.toContain('\r');
    const vs = JSON.parse((await api.kube.kubectl(['get', 'vs', 'web', '-n', 'demo', '-o', 'json'])).stdout);
    expect(vs.spec.http[0].route).toEqual([{ destination: { host: 'web', subset: 'v2' }, weight: 100 }]);

    // independent reads at once
    const [list, table, yaml, events, follow] = await Promise.all([
      vane(['rollout', 'list', '-n', 'demo', '-o', 'json']),
      vane(['rollout', 'list']),
      vane(['rollout', 'status', final.id, '-o', 'yaml']),
      vane(['rollout', 'events', final.id, '-o', 'json']),
      // --follow of an ended rollout: today's server has no SSE, the CLI falls back to polling
      vane(['rollout', 'events', final.id, '--follow']),
    ]);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout).map((x: { id: string }) => x.id)).toContain(final.id);
    expect(table.stdout).toMatch(/^ID +TARGET +PHASE +WEIGHTS +REASON$/m);
    expect(table.stdout).not.toContain('\x1b['); // no colour off a terminal
    expect(parseYaml(yaml.stdout).phase).toBe('succeeded');
    expect(JSON.parse(events.stdout).map((e: { type: string }) => e.type)).toContain('transition');
    expect(follow.code).toBe(0);
    expect(follow.stdout).toMatch(/transition → succeeded/);
  });

  it('start with flags, --set and a CI-derived idempotency key; the same CI run gets the same rollout', async () => {
    const ci = { GITHUB_RUN_ID: '4711', GITHUB_RUN_ATTEMPT: '1', GITHUB_JOB: 'deploy' };
    const args = [
      'rollout',
      'start',
      '-n',
      'demo',
      '--virtual-service',
      'flags',
      '--stable',
      'v1',
      '--canary',
      'v2',
      '--canary-labels',
      'app=flags',
      '--steps',
      '10,20',
      '--step-interval',
      '1h',
      '--set',
      'canary.labels.version=v2',
      '--set',
      'analysis.failureThreshold=3',
      '--set-string',
      'metadata.commit=1.10',
      '-o',
      'json',
    ];
    const a = await vane(args, ci);
    expect(a.code, a.stderr).toBe(0);
    const ra = JSON.parse(a.stdout);
    expect(ra.spec.canary.labels).toEqual({ app: 'flags', version: 'v2' });
    expect(ra.spec.strategy.steps).toEqual([10, 20]);
    expect(ra.spec.metadata).toMatchObject({ commit: '1.10' }); // --set would have made it the number 1.1
    expect(ra.spec.analysis.failureThreshold).toBe(3);
    expect(ra.spec.idempotencyKey).toMatch(/^github-4711-1-deploy-[0-9a-f]{12}$/);
    const again = await vane(args.slice(0, -2), ci);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`already started (same idempotency key): ${ra.id}`);
    // outside CI no key: a second start on the busy target is an API error, exit 2, code and message
    const busy = await vane(args);
    expect(busy.code).toBe(2);
    expect(busy.stderr).toMatch(/^vane: TARGET_BUSY: VirtualService demo\/flags is held by active rollout/m);
    noTrace(busy);

    // the commands: pause, resume, promote, approve (no gate is waiting: CONFLICT), abort
    for (const cmd of [['pause'], ['resume', '--reason', 'checked'], ['promote']]) {
      const r = await vane(['rollout', ...cmd.slice(0, 1), ra.id, ...cmd.slice(1), '-o', 'json']);
      expect(r.code, `${cmd[0]}: ${r.stderr}`).toBe(0);
      expect(JSON.parse(r.stdout).rollout.id).toBe(ra.id);
    }
    const approve = await vane(['rollout', 'approve', ra.id, '--gate', 'bogus-gate']);
    expect(approve.code).toBe(2);
    expect(approve.stderr).toMatch(/^vane: [A-Z_]+: /);
    noTrace(approve);
    const abort = await vane(['rollout', 'abort', ra.id, '--reason', 'cli test', '--by', 'tester']);
    expect(abort.code, abort.stderr).toBe(0);
    expect(abort.stdout).toMatch(new RegExp(`^abort: ${ra.id}`));
    // following an aborted rollout to its end: exit 1, for events --follow and get --watch alike
    const follow = await vane(['rollout', 'events', ra.id, '--follow', '--timeout', '60s', '-o', 'json']);
    expect(follow.code, follow.stderr).toBe(1);
    const lines = follow.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.at(-1)).toMatchObject({ type: 'transition', to: 'aborted' });
    // The actor is the caller's identity (no token configured: 'local'); the --by name is kept as a note.
    const abortEvent = lines.find((e) => e.type === 'command' && /abort/.test(e.reason));
    if (abortEvent) {
      expect(abortEvent.by).toBe('local');
      expect(abortEvent.reason).toContain('tester');
    }
    const watch = await vane(['rollout', 'get', ra.id, '--watch']);
    expect(watch.code).toBe(1);
    expect(watch.stdout).toContain('aborted');
    // retry starts a new rollout with the same spec
    const retry = await vane(['rollout', 'retry', ra.id, '-o', 'json']);
    expect(retry.code, retry.stderr).toBe(0);
    const rb = JSON.parse(retry.stdout).rollout;
    expect(rb.id).not.toBe(ra.id);
    expect((await vane(['rollout', 'abort', rb.id, '--reason', 'done'])).code).toBe(0);
  });

  it('--wait that runs out of time exits 3; a failed or aborted rollout exits 1', async () => {
    writeFileSync(join(dir, 'slow.yaml'), specYaml('slow', '1h'));
    const slow = await vane(['rollout', 'start', '-f', 'slow.yaml', '--wait', '--timeout', '3s']);
    expect(slow.code, slow.stderr).toBe(3);
    expect(slow.stderr).toMatch(/vane: rollout ro-\S+ is still \S+ after 3s \(--timeout\)/);
    const id = /started: (ro-\S+)/.exec(slow.stdout)![1]!;
    const waiter = vane(['rollout', 'get', id, '--watch', '--timeout', '60s']);
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await vane(['rollout', 'abort', id, '--reason', 'stop'])).code).toBe(0);
    const w = await waiter;
    expect(w.code, w.stderr).toBe(1);
    expect(w.stdout).toMatch(/phase: +aborted/);
  });

  it('on a terminal: one progress line rewritten in place and colour; NO_COLOR turns colour off', async () => {
    writeFileSync(join(dir, 'tty.yaml'), specYaml('tty'));
    const env = { VANE_URL: api.url };
    const r = await vaneOnTty(['rollout', 'start', '-f', 'tty.yaml', '--wait', '--timeout', '60s'], {
      env,
      cwd: dir,
    });
    expect(r.code, r.stdout).toBe(0);
    const esc = String.fromCharCode(27);
    const progress = r.stdout.replaceAll(esc, 'ESC');
    expect(progress).toMatch(/\rESC\[2Kro-\S+ {2}ESC\[\d+m\S+ESC\[0m {2}canary \d+% {2}last analysis: /);
    expect(r.stdout).toContain('\x1b[32msucceeded\x1b[0m');
    expect(r.stdout).not.toMatch(/^\S+Z {2}transition/m); // no plain event lines on a terminal
    const plain = await vaneOnTty(['rollout', 'list', '-n', 'demo'], {
      env: { ...env, NO_COLOR: '1' },
      cwd: dir,
    });
    expect(plain.code).toBe(0);
    expect(plain.stdout).toContain('succeeded');
    expect(plain.stdout).not.toContain('\x1b[');
  });
});
