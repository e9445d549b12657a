import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { parseDuration } from '../duration.ts';

export const ROLLOUT_USAGE = `usage: vane rollout <command> [options]

commands:
  start -f SPEC.yaml [--wait] [--timeout 30m]   start a rollout (YAML or JSON; '-' reads stdin)
  status ID [--watch]                           phase, weights, last analysis
  list [--namespace NS] [--active]              newest first
  events ID                                     the history: transitions, weights, metric values
  promote | promote-full | abort | pause | resume | retry  ID [--reason TEXT]
  approve ID [--gate GATE] [--reason TEXT]      open the gate it waits at (or GATE) once

options:
  --url URL       vane's API (default $VANE_URL or http://localhost:8080)
  --token TOKEN   API token (default $VANE_TOKEN)
  --by NAME       who asks, shown in the history (default $USER)
  -o json         machine-readable output

exit codes: 0 succeeded (or done), 1 rollout failed or aborted, 2 bad usage or API error, 3 --wait timed out`;

interface Api {
  url: string;
  token?: string;
}

interface RolloutView {
  id: string;
  phase: string;
  reason: string;
  weights: { stable: number; canary: number };
  spec: {
    target: { namespace: string; virtualService: string };
    stable: { subset: string };
    canary: { subset: string };
  };
  lastAnalysis?: { verdict: string; results: { name: string; verdict: string; message: string }[] };
  progress?: { stageIndex: number };
}

interface EventView {
  id: string;
  time: number;
  type: string;
  reason: string;
  weights?: { stable: number; canary: number };
}

class CliError extends Error {
  constructor(
    message: string,
    readonly code = 2,
  ) {
    super(message);
  }
}

async function call<T>(
  api: Api,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; data: T }> {
  let res: Response;
  try {
    res = await fetch(`${api.url}${path}`, {
      method,
      headers: {
        ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
        ...(api.token ? { Authorization: `Bearer ${api.token}` } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(15_000),
    });
  } catch (e) {
    throw new CliError(`cannot reach vane at ${api.url}: ${(e as Error).message} (set --url or VANE_URL)`);
  }
  const data = (await res.json().catch(() => ({}))) as T & {
    error?: { code: string; message: string; details?: unknown };
  };
  if (!res.ok) {
    const err = data.error;
    const issues = (err?.details as { issues?: { path: string; message: string }[] } | undefined)?.issues;
    const more =
      issues && issues.length > 1 ? `\n${issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')}` : '';
    throw new CliError(`${err?.code ?? res.status}: ${err?.message ?? res.statusText}${more}`);
  }
  return { status: res.status, data };
}

const TERMINAL = new Set(['succeeded', 'failed', 'aborted']);

function line(r: RolloutView): string {
  const t = r.spec.target;
  return `${r.id}  ${t.namespace}/${t.virtualService}  ${r.phase.padEnd(18)} ${r.spec.stable.subset} ${r.weights.stable}% / ${r.spec.canary.subset} ${r.weights.canary}%  ${r.reason}`;
}

function describe(r: RolloutView): string {
  const out = [line(r)];
  for (const m of r.lastAnalysis?.results ?? [])
    out.push(`  ${m.verdict.padEnd(12)} ${m.name}: ${m.message}`);
  return out.join('\n');
}

function eventLine(e: EventView): string {
  const w = e.weights ? ` [${e.weights.stable}/${e.weights.canary}]` : '';
  return `${new Date(e.time).toISOString()}  ${e.type.padEnd(10)} ${e.reason}${w}`;
}

function exitCodeOf(phase: string): number {
  return phase === 'succeeded' ? 0 : TERMINAL.has(phase) ? 1 : 0;
}

async function waitFor(api: Api, id: string, timeoutMs: number, json: boolean): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let after: string | undefined;
  for (;;) {
    const q = after ? `?after=${encodeURIComponent(after)}` : '';
    const { data: ev } = await call<{ events: EventView[] }>(api, 'GET', `/api/v1/rollouts/${id}/events${q}`);
    for (const e of ev.events) {
      if (!json) console.log(eventLine(e));
      after = e.id;
    }
    const { data } = await call<{ rollout: RolloutView }>(api, 'GET', `/api/v1/rollouts/${id}`);
    if (TERMINAL.has(data.rollout.phase)) {
      console.log(json ? JSON.stringify(data.rollout) : describe(data.rollout));
      return exitCodeOf(data.rollout.phase);
    }
    if (Date.now() > deadline) {
      console.error(
        `vane: rollout ${id} is still ${data.rollout.phase} after ${Math.round(timeoutMs / 1000)}s`,
      );
      return 3;
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

function readSpec(file: string): unknown {
  const text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  try {
    return parseYaml(text);
  } catch (e) {
    throw new CliError(`${file} is not valid YAML or JSON: ${(e as Error).message}`);
  }
}

/** `vane rollout ...`: talks to vane's HTTP API like any CI job would. */
export async function rolloutCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  function parse() {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        file: { type: 'string', short: 'f' },
        wait: { type: 'boolean', default: false },
        watch: { type: 'boolean', default: false },
        timeout: { type: 'string', default: '60m' },
        url: { type: 'string' },
        token: { type: 'string' },
        by: { type: 'string' },
        reason: { type: 'string' },
        gate: { type: 'string' },
        namespace: { type: 'string', short: 'n' },
        active: { type: 'boolean', default: false },
        output: { type: 'string', short: 'o' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  }
  try {
    parsed = parse();
  } catch (e) {
    console.error(`vane: ${(e as Error).message}\n\n${ROLLOUT_USAGE}`);
    return 2;
  }
  const { values: o, positionals } = parsed;
  const [cmd, id] = positionals;
  if (o.help || !cmd) {
    console.log(ROLLOUT_USAGE);
    return o.help ? 0 : 2;
  }
  const api: Api = {
    url: (o.url ?? env.VANE_URL ?? 'http://localhost:8080').replace(/\/$/, ''),
    ...((o.token ?? env.VANE_TOKEN) ? { token: o.token ?? env.VANE_TOKEN } : {}),
  };
  const json = o.output === 'json';
  const by = o.by ?? env.USER;
  const needId = () => {
    if (!id) throw new CliError(`vane rollout ${cmd} needs a rollout id`);
    return encodeURIComponent(id);
  };
  try {
    let timeoutMs: number;
    try {
      timeoutMs = parseDuration(o.timeout ?? '60m');
    } catch {
      throw new CliError(`--timeout ${o.timeout}: expected a duration such as 30m`);
    }
    switch (cmd) {
      case 'start': {
        if (!o.file) throw new CliError('vane rollout start needs -f SPEC.yaml (or -f - for stdin)');
        const spec = readSpec(o.file) as Record<string, unknown>;
        const { status, data } = await call<{ rollout: RolloutView }>(api, 'POST', '/api/v1/rollouts', spec);
        if (!json)
          console.log(
            `${status === 201 ? 'started' : 'already started (same idempotencyKey)'}: ${line(data.rollout)}`,
          );
        if (o.wait) return waitFor(api, data.rollout.id, timeoutMs, json);
        if (json) console.log(JSON.stringify(data.rollout));
        return 0;
      }
      case 'status': {
        const rid = needId();
        if (o.watch) return waitFor(api, rid, timeoutMs, json);
        const { data } = await call<{ rollout: RolloutView }>(api, 'GET', `/api/v1/rollouts/${rid}`);
        console.log(json ? JSON.stringify(data.rollout) : describe(data.rollout));
        return 0;
      }
      case 'list': {
        const q = new URLSearchParams();
        if (o.namespace) q.set('namespace', o.namespace);
        if (o.active) q.set('active', 'true');
        const { data } = await call<{ rollouts: RolloutView[] }>(api, 'GET', `/api/v1/rollouts?${q}`);
        console.log(
          json ? JSON.stringify(data.rollouts) : data.rollouts.map(line).join('\n') || '(no rollouts)',
        );
        return 0;
      }
      case 'events': {
        const { data } = await call<{ events: EventView[] }>(
          api,
          'GET',
          `/api/v1/rollouts/${needId()}/events`,
        );
        console.log(json ? JSON.stringify(data.events) : data.events.map(eventLine).join('\n'));
        return 0;
      }
      case 'promote':
      case 'promote-full':
      case 'abort':
      case 'pause':
      case 'resume':
      case 'retry': {
        const body = { ...(by ? { by } : {}), ...(o.reason ? { reason: o.reason } : {}) };
        const { data } = await call<{ rollout: RolloutView }>(
          api,
          'POST',
          `/api/v1/rollouts/${needId()}/${cmd}`,
          body,
        );
        console.log(json ? JSON.stringify(data.rollout) : `${cmd}: ${line(data.rollout)}`);
        return 0;
      }
      case 'approve': {
        const body = {
          ...(by ? { by } : {}),
          ...(o.reason ? { reason: o.reason } : {}),
          ...(o.gate ? { gate: o.gate } : {}),
        };
        const { data } = await call<{ rollout: RolloutView; gate: string }>(
          api,
          'POST',
          `/api/v1/rollouts/${needId()}/approve`,
          body,
        );
        console.log(json ? JSON.stringify(data) : `approved ${data.gate}: ${line(data.rollout)}`);
        return 0;
      }
      default:
        throw new CliError(`unknown rollout command '${cmd}'\n\n${ROLLOUT_USAGE}`);
    }
  } catch (e) {
    if (e instanceof CliError) {
      console.error(`vane: ${e.message}`);
      return e.code;
    }
    throw e;
  }
}
