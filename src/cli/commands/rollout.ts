import type { Command } from 'commander';
import { stringify as toYaml } from 'yaml';
import type { ApiClient } from '../client.ts';
import { clientOf, collect, durationFlag, examples, withClientOptions } from '../common.ts';
import { CliError, EXIT, EXIT_CODES_HELP } from '../errors.ts';
import { type EventView, followEvents, TERMINAL } from '../events.ts';
import { emit, paint, phaseColour, table } from '../output.ts';
import type { Output } from '../settings.ts';
import {
  applySet,
  ciIdempotencyKey,
  MAX_SETS,
  mergeOver,
  parseLabels,
  readMappingFile,
} from '../spec-input.ts';

export interface RolloutView {
  id: string;
  phase: string;
  reason: string;
  createdAt?: number;
  weights: { stable: number; canary: number };
  spec: {
    target: { namespace: string; virtualService: string };
    stable: { subset: string };
    canary: { subset: string };
  };
  lastAnalysis?: { verdict: string; results?: { name: string; verdict: string; message: string }[] };
  after?: { state: string; workload?: string; scaleDownAt?: number; message?: string };
}

const rid = (id: string) => encodeURIComponent(id);
const target = (r: RolloutView) => `${r.spec.target.namespace}/${r.spec.target.virtualService}`;
const weights = (r: RolloutView) =>
  `${r.spec.stable.subset} ${r.weights.stable}% / ${r.spec.canary.subset} ${r.weights.canary}%`;
const phase = (p: string) => paint(p, phaseColour(p));

function line(r: RolloutView): string {
  return `${r.id}  ${target(r)}  ${phase(r.phase)}  ${weights(r)}  ${r.reason}`;
}

function describe(r: RolloutView): string {
  const out = [
    `id:       ${r.id}`,
    `target:   ${target(r)}`,
    `phase:    ${phase(r.phase)}${r.reason ? `  (${r.reason})` : ''}`,
    `weights:  ${weights(r)}`,
  ];
  if (r.after) {
    const at = r.after.state === 'scheduled' && r.after.scaleDownAt;
    out.push(
      `after:    ${r.after.state}${r.after.workload ? ` (${r.after.workload})` : ''}${at ? ` scale-down at ${new Date(at).toISOString()}` : ''}${r.after.message ? `: ${r.after.message}` : ''}`,
    );
  }
  if (r.lastAnalysis) {
    out.push(`analysis: ${paint(r.lastAnalysis.verdict, phaseColour(r.lastAnalysis.verdict))}`);
    for (const m of r.lastAnalysis.results ?? [])
      out.push(`  ${paint(m.verdict.padEnd(12), phaseColour(m.verdict))} ${m.name}: ${m.message}`);
  }
  return out.join('\n');
}

export function eventLine(e: EventView): string {
  const w = e.weights ? ` [${e.weights.stable}/${e.weights.canary}]` : '';
  const what = e.type === 'transition' && e.to ? `${e.type} → ${phase(e.to)}` : e.type;
  const verdict = e.verdict ? ` ${paint(e.verdict, phaseColour(e.verdict))}` : '';
  return `${new Date(e.time).toISOString()}  ${what}${verdict}  ${e.reason}${w}${e.by ? ` (by ${e.by})` : ''}`;
}

function exitCodeOf(p: string): number {
  return p === 'succeeded' ? EXIT.ok : TERMINAL.has(p) ? EXIT.failed : EXIT.ok;
}

async function getRollout(api: ApiClient, id: string): Promise<RolloutView> {
  return (await api.call<{ rollout: RolloutView }>('GET', `/api/v1/rollouts/${rid(id)}`)).data.rollout;
}

/**
 * Follows a rollout to its end: on a terminal a progress line rewritten in place (phase, weight, last
 * verdict), otherwise one plain line per event. Resolves with the exit code (0, 1, or 3 on timeout).
 */
async function waitForRollout(
  api: ApiClient,
  start: RolloutView,
  timeoutMs: number,
  output: Output,
): Promise<number> {
  const began = Date.now();
  const live = output === 'table' && Boolean(process.stdout.isTTY);
  const state = {
    phase: start.phase,
    canary: start.weights.canary,
    verdict: start.lastAnalysis?.verdict,
  };
  const render = () =>
    `\r\x1b[2K${start.id}  ${phase(state.phase)}  canary ${state.canary}%  last analysis: ${
      state.verdict ? paint(state.verdict, phaseColour(state.verdict)) : '-'
    }  ${Math.round((Date.now() - began) / 1000)}s`;
  const ticker = live ? setInterval(() => process.stdout.write(render()), 1_000) : undefined;
  ticker?.unref();
  let result: Awaited<ReturnType<typeof followEvents>>;
  try {
    if (TERMINAL.has(start.phase))
      result = { phase: start.phase, timedOut: false, mode: 'poll', connections: 0 };
    else
      result = await followEvents(api, start.id, {
        deadline: began + timeoutMs,
        onEvent(e) {
          if (e.type === 'transition' && e.to) state.phase = e.to;
          if (e.weights) state.canary = e.weights.canary;
          if (e.type === 'analysis' && e.verdict) state.verdict = e.verdict;
          if (live) process.stdout.write(render());
          else if (output === 'table') console.log(eventLine(e));
          else console.error(eventLine(e));
        },
      });
  } finally {
    if (ticker) clearInterval(ticker);
    if (live) process.stdout.write(`${render()}\n`);
  }
  if (result.timedOut) {
    console.error(
      `vane: rollout ${start.id} is still ${state.phase} after ${Math.round(timeoutMs / 1000)}s (--timeout); it goes on in vane`,
    );
    return EXIT.timeout;
  }
  const final = await getRollout(api, start.id);
  emit(output, final, () => describe(final));
  return exitCodeOf(final.phase);
}

interface StartFlags {
  file?: string;
  template?: string;
  namespace?: string;
  virtualService?: string;
  destinationRule?: string;
  stable?: string;
  canary?: string;
  canaryLabels?: string;
  steps?: string;
  stepInterval?: string;
  commit?: string;
  pipelineUrl?: string;
  set?: string[];
  setString?: string[];
  idempotencyKey?: string;
  wait?: boolean;
  timeout: string;
}

/** The request body of `rollout start`: the file, then the template name, then flags, then --set, in that order of strength. */
export function buildStartBody(o: StartFlags, env: NodeJS.ProcessEnv = process.env): Record<string, unknown> {
  let body: Record<string, unknown> = o.file ? readMappingFile(o.file) : {};
  if (o.template) body.template = o.template;
  const flags: Record<string, unknown> = {};
  const put = (path: string[], v: unknown) => {
    if (v === undefined) return;
    let node = flags;
    for (const k of path.slice(0, -1)) {
      node[k] ??= {};
      node = node[k] as Record<string, unknown>;
    }
    node[path.at(-1)!] = v;
  };
  put(['target', 'namespace'], o.namespace);
  put(['target', 'virtualService'], o.virtualService);
  put(
    ['target', 'destinationRule'],
    o.destinationRule ?? (o.virtualService && !o.file && !o.template ? o.virtualService : undefined),
  );
  put(['stable', 'subset'], o.stable);
  put(['canary', 'subset'], o.canary);
  put(['canary', 'labels'], parseLabels('--canary-labels', o.canaryLabels));
  if (o.steps !== undefined) {
    const steps = o.steps.split(',').map((s) => Number(s.trim()));
    if (steps.some((n) => !Number.isInteger(n) || n < 0 || n > 100))
      throw new CliError(
        `--steps ${o.steps}: expected weights from 0 to 100 separated by commas, e.g. 10,25,50`,
      );
    put(['strategy', 'type'], 'canary');
    put(['strategy', 'steps'], steps);
  }
  put(['strategy', 'stepInterval'], o.stepInterval);
  put(['metadata', 'commit'], o.commit);
  put(['metadata', 'pipelineUrl'], o.pipelineUrl);
  body = mergeOver(body, flags);
  const sets = [
    ...(o.set ?? []).map((s) => [s, false] as const),
    ...(o.setString ?? []).map((s) => [s, true] as const),
  ];
  if (sets.length > MAX_SETS) throw new CliError(`at most ${MAX_SETS} --set flags`);
  for (const [s, asString] of sets) applySet(body, s, asString);
  if (!Object.keys(body).length)
    throw new CliError(
      'vane rollout start needs a spec: -f SPEC.yaml, --template NAME, or flags such as --virtual-service (see --help)',
    );
  if (o.idempotencyKey) body.idempotencyKey = o.idempotencyKey;
  else if (body.idempotencyKey === undefined) {
    const key = ciIdempotencyKey(body, env);
    if (key) body.idempotencyKey = key;
  }
  return body;
}

export function registerRollout(program: Command): void {
  const rollout = program
    .command('rollout')
    .description('start, watch and steer rollouts through the API')
    .addHelpText('after', `\n${EXIT_CODES_HELP}`);
  examples(rollout, 'vane rollout start -f rollout.yaml --wait', 'vane rollout list --active');

  const start = withClientOptions(rollout.command('start'))
    .description('start a rollout from a spec file, a template, flags and --set overrides')
    .option('-f, --file <file>', "rollout spec (YAML or JSON; '-' reads stdin)")
    .option('--template <name>', 'a named template the API merges under the rest')
    .option('-n, --namespace <ns>', 'target.namespace')
    .option('--virtual-service <name>', 'target.virtualService')
    .option(
      '--destination-rule <name>',
      'target.destinationRule (default with flags only: the VirtualService name)',
    )
    .option('--stable <subset>', 'stable.subset')
    .option('--canary <subset>', 'canary.subset')
    .option('--canary-labels <k=v,...>', 'canary.labels, e.g. version=v2')
    .option('--steps <weights>', 'strategy.steps of a canary, e.g. 10,25,50')
    .option('--step-interval <duration>', 'strategy.stepInterval, e.g. 1m')
    .option('--commit <sha>', 'metadata.commit')
    .option('--pipeline-url <url>', 'metadata.pipelineUrl')
    .option(
      '--set <path=value>',
      'set a field by its dotted path; the value is read as YAML (repeatable)',
      collect,
    )
    .option('--set-string <path=value>', 'like --set, the value always a string (repeatable)', collect)
    .option(
      '--idempotency-key <key>',
      'the same key returns the same rollout (default in CI: derived from the CI run and job ids)',
    )
    .option('--wait', 'follow the rollout to its end; the exit code tells how it ended')
    .option('--timeout <duration>', 'with --wait: give up waiting after this long (exit 3)', '60m')
    .addHelpText(
      'after',
      `
The request is built in this order, later wins: the file, --template, the flags, then --set.
Label keys with dots escape them: --set 'canary.labels.app\\.kubernetes\\.io/version=v2'.
In GitHub Actions, GitLab CI, Buildkite, CircleCI, Azure Pipelines and Jenkins the default
idempotency key is derived from the run and job ids, so a retried request does not start a
second rollout.

${EXIT_CODES_HELP}`,
    )
    .action(async (o: StartFlags, cmd: Command) => {
      const timeoutMs = durationFlag('--timeout', o.timeout);
      const body = buildStartBody(o);
      const { api, settings } = clientOf(cmd);
      const { status, data } = await api.call<{ rollout: RolloutView }>('POST', '/api/v1/rollouts', body);
      const r = data.rollout;
      if (o.wait) {
        const note = `${status === 201 ? 'started' : 'already started (same idempotency key)'}: ${line(r)}`;
        if (settings.output === 'table') console.log(note);
        else console.error(note);
        process.exitCode = await waitForRollout(api, r, timeoutMs, settings.output);
        return;
      }
      emit(
        settings.output,
        r,
        () => `${status === 201 ? 'started' : 'already started (same idempotency key)'}: ${line(r)}`,
      );
    });
  examples(
    start,
    'vane rollout start -f rollout.yaml --wait --timeout 30m',
    'vane rollout start --template reviews --set canary.labels.version=v2 --set canary.subset=v2 --wait',
    'vane rollout start -n shop --virtual-service cart --stable v1 --canary v2 --canary-labels version=v2 --steps 10,50',
  );

  const get = withClientOptions(rollout.command('get'))
    .alias('status')
    .description('a rollout: phase, weights, the last analysis with its values')
    .argument('<id>', 'rollout id')
    .option('--watch', 'follow it to its end like start --wait (exit code tells how it ended)')
    .option('--timeout <duration>', 'with --watch: give up after this long (exit 3)', '60m')
    .addHelpText('after', `\n${EXIT_CODES_HELP}`)
    .action(async (id: string, o: { watch?: boolean; timeout: string }, cmd: Command) => {
      const timeoutMs = durationFlag('--timeout', o.timeout);
      const { api, settings } = clientOf(cmd);
      const r = await getRollout(api, id);
      if (o.watch) {
        process.exitCode = await waitForRollout(api, r, timeoutMs, settings.output);
        return;
      }
      emit(settings.output, r, () => describe(r));
    });
  examples(get, 'vane rollout get ro-3f2a9c1b7d004e8f9a1b -o yaml');

  const list = withClientOptions(rollout.command('list'))
    .description('rollouts, newest first')
    .option('-n, --namespace <ns>', 'only this namespace')
    .option('--active', 'only rollouts that have not ended')
    .option('--limit <n>', 'at most this many', '100')
    .action(async (o: { namespace?: string; active?: boolean; limit: string }, cmd: Command) => {
      if (!/^\d+$/.test(o.limit)) throw new CliError(`--limit ${o.limit}: expected a whole number`);
      const { api, settings } = clientOf(cmd);
      const q = new URLSearchParams({ limit: o.limit });
      if (o.namespace) q.set('namespace', o.namespace);
      if (o.active) q.set('active', 'true');
      const { data } = await api.call<{ rollouts: RolloutView[] }>('GET', `/api/v1/rollouts?${q}`);
      emit(settings.output, data.rollouts, () =>
        data.rollouts.length
          ? table(
              ['ID', 'TARGET', 'PHASE', 'WEIGHTS', 'REASON'],
              data.rollouts.map((r) => [r.id, target(r), phase(r.phase), weights(r), r.reason]),
            )
          : '(no rollouts)',
      );
    });
  examples(list, 'vane rollout list -n shop --active -o json');

  const events = withClientOptions(rollout.command('events'))
    .description("a rollout's history: transitions, weights, metric values, gates")
    .argument('<id>', 'rollout id')
    .option('--follow', 'keep printing new events until the rollout ends (exit code tells how it ended)')
    .option('--timeout <duration>', 'with --follow: give up after this long (exit 3)', '60m')
    .addHelpText(
      'after',
      `
With --follow, events come over the API's event stream (SSE), resumed after a dropped connection;
a server without the stream is polled. JSON output is one event per line.

${EXIT_CODES_HELP}`,
    )
    .action(async (id: string, o: { follow?: boolean; timeout: string }, cmd: Command) => {
      const timeoutMs = durationFlag('--timeout', o.timeout);
      const { api, settings } = clientOf(cmd);
      if (!o.follow) {
        const { data } = await api.call<{ events: EventView[] }>('GET', `/api/v1/rollouts/${rid(id)}/events`);
        emit(settings.output, data.events, () => data.events.map(eventLine).join('\n') || '(no events)');
        return;
      }
      const result = await followEvents(api, id, {
        deadline: Date.now() + timeoutMs,
        onEvent(e) {
          if (settings.output === 'json') process.stdout.write(`${JSON.stringify(e)}\n`);
          else if (settings.output === 'yaml') process.stdout.write(`---\n${toYaml(e)}`);
          else console.log(eventLine(e));
        },
      });
      if (result.timedOut) {
        console.error(`vane: rollout ${id} had not ended after ${Math.round(timeoutMs / 1000)}s (--timeout)`);
        process.exitCode = EXIT.timeout;
        return;
      }
      process.exitCode = exitCodeOf(result.phase!);
    });
  examples(events, 'vane rollout events ro-3f2a9c1b7d004e8f9a1b --follow');

  const command = (
    name: string,
    description: string,
    path: (o: Record<string, unknown>) => string,
    body: (o: Record<string, unknown>) => Record<string, unknown>,
    extra: (c: Command) => Command,
    example: string,
  ) => {
    const c = extra(withClientOptions(rollout.command(name)))
      .description(description)
      .argument('<id>', 'rollout id')
      .option('--by <name>', 'a note of who asks, kept in the history (the actor recorded is the token name)')
      .action(async (id: string, o: Record<string, unknown>, cmd: Command) => {
        const { api, settings } = clientOf(cmd);
        const b = { ...(o.by ? { by: o.by } : {}), ...body(o) };
        const { data } = await api.call<{ rollout: RolloutView; gate?: string }>(
          'POST',
          `/api/v1/rollouts/${rid(id)}/${path(o)}`,
          b,
        );
        emit(
          settings.output,
          data,
          () => `${name}${data.gate ? ` ${data.gate}` : ''}: ${line(data.rollout)}`,
        );
      });
    examples(c, example);
  };
  const reason = (o: Record<string, unknown>) => (o.reason ? { reason: o.reason } : {});
  const withReason = (c: Command) => c.option('--reason <text>', 'why, shown in the history');
  command(
    'promote',
    'open the gate it waits at, or move on one step now; --full skips the remaining steps',
    (o) => (o.full ? 'promote-full' : 'promote'),
    reason,
    (c) => withReason(c).option('--full', 'skip the remaining steps and promote'),
    'vane rollout promote ro-3f2a9c1b7d004e8f9a1b --full',
  );
  command(
    'approve',
    'open a gate of this rollout once (default: the gate it waits at)',
    () => 'approve',
    (o) => ({ ...reason(o), ...(o.gate ? { gate: o.gate } : {}) }),
    (c) =>
      withReason(c).option(
        '--gate <gate>',
        'confirm-rollout, confirm-promotion, confirm-traffic-increase or confirm-traffic-increase:N',
      ),
    'vane rollout approve ro-3f2a9c1b7d004e8f9a1b --gate confirm-promotion',
  );
  command(
    'abort',
    'roll back to stable and end as aborted',
    () => 'abort',
    reason,
    (c) => c.requiredOption('--reason <text>', 'why, shown in the history'),
    'vane rollout abort ro-3f2a9c1b7d004e8f9a1b --reason "errors in checkout"',
  );
  command(
    'pause',
    'hold the rollout where it is',
    () => 'pause',
    reason,
    withReason,
    'vane rollout pause ro-3f2a9c1b7d004e8f9a1b',
  );
  command(
    'resume',
    'continue a paused rollout (after drift: reassert the weights)',
    () => 'resume',
    reason,
    withReason,
    'vane rollout resume ro-3f2a9c1b7d004e8f9a1b',
  );
  command(
    'retry',
    'start a new rollout with the spec of a failed or aborted one',
    () => 'retry',
    () => ({}),
    (c) => c,
    'vane rollout retry ro-3f2a9c1b7d004e8f9a1b',
  );
  command(
    'undo',
    'send a succeeded rollout back to its old version (scaled up again first when it was scaled down)',
    () => 'undo',
    reason,
    withReason,
    'vane rollout undo ro-3f2a9c1b7d004e8f9a1b --reason "checkout errors since the release"',
  );
}
