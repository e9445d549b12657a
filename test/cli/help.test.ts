import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandTree } from '../../src/cli/commands/completion.ts';
import { buildProgram } from '../../src/cli/program.ts';
import { vane } from './harness.ts';

const VERSION = JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8')).version;

// Every command path of the real command tree; the runner is never called (only names are read).
const PATHS = commandTree(
  buildProgram({
    runServer: () => {
      throw new Error('not called');
    },
  }),
).map((n) => n.path);

// Each CLI run is a Node process starting tsx; on a loaded machine that takes seconds.
describe('vane --help and --version start nothing', { timeout: 240_000 }, () => {
  let cwd: string;
  let held: Server;
  let port: number;
  let connections = 0;
  beforeAll(async () => {
    cwd = mkdtempSync(join(tmpdir(), 'vane-help-'));
    held = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => held.listen(0, '127.0.0.1', r));
    port = (held.address() as { port: number }).port;
  });
  afterAll(async () => {
    await new Promise((r) => held.close(r));
    rmSync(cwd, { recursive: true, force: true });
  });

  // No VANE_DATA_DIR and no REDIS_URL: before the rebuild, `vane start --help` started a redis-server,
  // the sandbox cluster and the API here.
  const env = () => ({ PORT: String(port), HOST: '127.0.0.1' });

  it('the tree has every command of the issue', () => {
    const names = PATHS.map((p) => p.join(' '));
    for (const c of [
      'start',
      'all',
      'api',
      'worker',
      'sandbox',
      'sandbox kube',
      'rollout start',
      'rollout get',
      'rollout list',
      'rollout events',
      'rollout promote',
      'rollout approve',
      'rollout abort',
      'rollout pause',
      'rollout resume',
      'rollout retry',
      'analyze',
      'templates list',
      'templates get',
      'templates apply',
      'templates delete',
      'version',
    ])
      expect(names).toContain(c);
  });

  it('every command and subcommand answers --help with a usage line, its options and an example', async () => {
    const queue = [...PATHS];
    const results: { path: string[]; r: Awaited<ReturnType<typeof vane>> }[] = [];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let path = queue.shift(); path; path = queue.shift())
          results.push({ path, r: await vane([...path, '--help'], { cwd, env: env() }) });
      }),
    );
    expect(results).toHaveLength(PATHS.length);
    for (const { path, r } of results) {
      const name = ['vane', ...path].join(' ');
      expect(r.code, `${name} --help: ${r.stderr}`).toBe(0);
      expect(r.stdout, name).toMatch(new RegExp(`^Usage: ${name}(\\|\\S+)? \\[options\\]`, 'm'));
      expect(r.stdout, name).toContain('Options:');
      expect(r.stdout, name).toMatch(/^Examples?:\n {2}\S/m);
      expect(r.stderr, name).toBe('');
    }
    // the rollout commands document the exit codes
    const start = results.find((x) => x.path.join(' ') === 'rollout start')!.r.stdout;
    expect(start).toContain('3  --wait timed out');
    expect(start).toContain('--idempotency-key');
    // no .vane, nothing at all written in the working directory, nobody connected to the port
    expect(readdirSync(cwd)).toEqual([]);
    expect(existsSync(join(cwd, '.vane'))).toBe(false);
    expect(connections).toBe(0);
    expect(held.listening).toBe(true);
  });

  it('--version and `vane version` print the package version and start nothing', async () => {
    for (const args of [['--version'], ['-V'], ['start', '--version']]) {
      const r = await vane(args, { cwd, env: env() });
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout.trim()).toBe(VERSION);
    }
    const v = await vane(['version'], { cwd, env: env() });
    expect(v.stdout.trim()).toBe(`vane ${VERSION}`);
    const json = await vane(['version', '-o', 'json'], { cwd, env: env() });
    expect(JSON.parse(json.stdout).version).toBe(VERSION);
    expect(readdirSync(cwd)).toEqual([]);
    expect(connections).toBe(0);
  });

  it('bare `vane`, `vane rollout` and `vane templates` print help and exit 2 (bare `vane sandbox` runs the sandbox); bad usage exits 2 with one line', async () => {
    for (const args of [[], ['rollout'], ['templates']]) {
      const r = await vane(args, { cwd, env: env() });
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^Usage: vane/m);
    }
    const unknown = await vane(['rollot'], { cwd, env: env() });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("vane: unknown command 'rollot'");
    const noReason = await vane(['rollout', 'abort', 'ro-1'], { cwd, env: env() });
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toContain("vane: required option '--reason <text>' not specified");
    const badOutput = await vane(['rollout', 'list', '-o', 'xml'], { cwd, env: env() });
    expect(badOutput.code).toBe(2);
    expect(badOutput.stderr).toContain('Allowed choices are table, json, yaml');
    const missing = await vane(['rollout', 'start', '-f', 'nope.yaml'], { cwd, env: env() });
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe('vane: cannot read nope.yaml: ENOENT');
    expect(readdirSync(cwd)).toEqual([]);
    expect(connections).toBe(0);
  });

  it('`vane completion bash` is generated from the command tree', async () => {
    const r = await vane(['completion', 'bash'], { cwd, env: env() });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('complete -o default -F _vane vane');
    expect(r.stdout).toMatch(
      /"rollout"\) words="start get status list events promote approve abort pause resume retry/,
    );
    expect(r.stdout).toContain('"rollout start") words="--server --token --output -o --file -f');
  });
});
