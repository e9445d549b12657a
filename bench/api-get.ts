/**
 * GET /api/v1/rollouts/{id} against a real Redis, side by side with a Hono hello-world in the same
 * run: each server in its own process, autocannon (-c 32) in this one, in alternating 2 s slices.
 * vane runs as `vane api` does (startService, a bearer token, request logging at LOG_LEVEL).
 * Run: npx tsx bench/api-get.ts [--seconds 10] [--connections 32] [--path /healthz]
 * Prints both figures, the ratio, and a last line `RESULT {json}`.
 */
import { type ChildProcess, execSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

interface Result {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
}
// autocannon ships no types; the shape used here is declared above.
const autocannon = createRequire(import.meta.url)('autocannon') as (o: {
  url: string;
  connections: number;
  duration: number;
  headers: Record<string, string>;
}) => Promise<Result>;

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    serve: { type: 'string' },
    redis: { type: 'string' },
    prefix: { type: 'string' },
    /** Another vane path to load instead of the rollout (e.g. /healthz, /api/v1/templates), to see where time goes. */
    path: { type: 'string' },
  },
});
const TOKEN = 'bench-token-0123456789';
/** Clock ticks per second of /proc's CPU times (read once, when first needed). */
let clockTicks: number | undefined;

if (values.serve) {
  await serve(values.serve, values.redis, values.prefix);
} else {
  await main();
}

/** Child mode: one server, its port on stdout. */
async function serve(kind: string, redisUrl?: string, prefix?: string): Promise<void> {
  if (kind === 'hello') {
    const { Hono } = await import('hono');
    const { serve: listen } = await import('@hono/node-server');
    const app = new Hono();
    app.get('/hello', (c) => c.json({ hello: 'world' }));
    listen({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => console.log(`PORT ${info.port}`));
    // An orderly exit, so that --cpu-prof writes its profile.
    process.once('SIGTERM', () => process.exit(0));
    return;
  }
  const { loadConfig } = await import('../src/config.ts');
  const { startService } = await import('../src/service.ts');
  const config = loadConfig({
    REDIS_URL: redisUrl,
    HOST: '127.0.0.1',
    VANE_API_TOKENS: TOKEN,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
    VANE_KEY_PREFIX: prefix,
    // VANE_READ_CACHE=0 measures the GET reading Redis on every request (no client-side caching).
    ...(process.env.VANE_READ_CACHE ? { VANE_READ_CACHE: process.env.VANE_READ_CACHE } : {}),
  });
  // Port 0: a free one (the setting itself must be 1-65535).
  const service = await startService({ ...config, port: 0, redisUrl: redisUrl! }, 'api');
  console.log(`PORT ${service.port}`);
  process.once('SIGTERM', () => void service.shutdown('SIGTERM').then(() => process.exit(0)));
}

function child(args: string[]): Promise<{ proc: ChildProcess; port: number }> {
  // BENCH_CPU_PROF=<dir> writes CPU profiles of both servers under it (<dir>/vane, <dir>/hello; the
  // larger file of each is its main thread).
  const prof = process.env.BENCH_CPU_PROF
    ? ['--cpu-prof', '--cpu-prof-dir', join(process.env.BENCH_CPU_PROF, args[1]!)]
    : [];
  const proc = spawn(process.execPath, [...prof, '--import', 'tsx', import.meta.filename, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PORT (\d+)/.exec(out);
      if (m) resolve({ proc, port: Number(m[1]) });
    });
    proc.once('exit', (code) => reject(new Error(`server ${args.join(' ')} exited ${code}`)));
  });
}

interface Figures {
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU time per request in µs: the server's own process(es) and, for vane, its Redis. */
  cpuUsPerReq: Record<string, number>;
}

interface Target {
  url: string;
  headers: Record<string, string>;
  /** Processes whose CPU time counts for this target, by name. */
  pids: Record<string, number>;
}

/** CPU time (user + system) of a process so far, in µs, from /proc (Linux). */
function cpuUs(pid: number): number {
  clockTicks ??= Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / clockTicks) * 1e6;
}

/**
 * Measures both targets in alternating 2-second slices (after a warm-up of each), so that load
 * from elsewhere on the machine falls on both alike; req/s is the total over the slices, p50 and
 * p99 the median of the slices' figures. CPU time per request (of the server's processes and of
 * autocannon) is summed over the slices too: it says where the work is, and it moves far less
 * with the machine's load than req/s does.
 */
async function compare(a: Target, b: Target): Promise<[Figures, Figures]> {
  const connections = Number(values.connections);
  const slices = Math.max(1, Math.round(Number(values.seconds) / 2));
  const run = async (t: Target, duration: number) => {
    const r = await autocannon({ url: t.url, connections, duration, headers: t.headers });
    if (r.non2xx || r.errors) throw new Error(`${t.url}: ${r.non2xx} non-2xx, ${r.errors} errors`);
    return r;
  };
  await run(a, 2);
  await run(b, 2);
  const out: Result[][] = [[], []];
  const cpu = [new Map<string, number>(), new Map<string, number>()];
  const measured = async (t: Target, i: number) => {
    const pids = Object.entries(t.pids);
    const before = pids.map(([, pid]) => cpuUs(pid));
    const self = process.cpuUsage();
    out[i]!.push(await run(t, 2));
    const used = process.cpuUsage(self);
    for (const [j, [name, pid]] of pids.entries()) {
      cpu[i]!.set(name, (cpu[i]!.get(name) ?? 0) + cpuUs(pid) - before[j]!);
    }
    cpu[i]!.set('autocannon', (cpu[i]!.get('autocannon') ?? 0) + used.user + used.system);
  };
  for (let i = 0; i < slices; i++) {
    await measured(a, 0);
    await measured(b, 1);
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const figures = (rs: Result[], c: Map<string, number>): Figures => {
    const requests = rs.reduce((s, r) => s + r.requests.total, 0);
    return {
      reqPerSec: Math.round(rs.reduce((s, r) => s + r.requests.average, 0) / rs.length),
      p50Ms: median(rs.map((r) => r.latency.p50)),
      p99Ms: median(rs.map((r) => r.latency.p99)),
      cpuUsPerReq: Object.fromEntries([...c].map(([k, v]) => [k, Math.round((v / requests) * 10) / 10])),
    };
  };
  return [figures(out[0]!, cpu[0]!), figures(out[1]!, cpu[1]!)];
}

async function main(): Promise<void> {
  const { startRedisServer } = await import('../src/sandbox/processes.ts');
  const { buildTestDomain, specFor } = await import('../test/helpers/domain.ts');
  const { startRollout } = await import('../src/rollouts/verbs.ts');
  const dir = mkdtempSync(join(tmpdir(), 'vane-bench-api-'));
  const redis = await startRedisServer({ dir });
  const children: ChildProcess[] = [];
  try {
    // The rollout is stored through the domain verb (no cluster here), then read through the API.
    const domain = buildTestDomain({ redisUrl: redis.url });
    const { rollout } = await startRollout({ ctx: domain.ctx, input: specFor('reviews') });
    await domain.close();
    const vane = await child(['--serve', 'vane', '--redis', redis.url, '--prefix', domain.prefix]);
    children.push(vane.proc);
    const hello = await child(['--serve', 'hello']);
    children.push(hello.proc);
    const auth = { authorization: `Bearer ${TOKEN}` };

    const [helloRes, vaneRes] = await compare(
      { url: `http://127.0.0.1:${hello.port}/hello`, headers: {}, pids: { server: hello.proc.pid! } },
      {
        url: values.path
          ? `http://127.0.0.1:${vane.port}${values.path}`
          : `http://127.0.0.1:${vane.port}/api/v1/rollouts/${rollout.id}`,
        headers: auth,
        pids: { server: vane.proc.pid!, redis: redis.pid },
      },
    );
    const ratio = Math.round((vaneRes.reqPerSec / helloRes.reqPerSec) * 100) / 100;
    console.log(
      `hono hello-world            ${helloRes.reqPerSec} req/s  p50 ${helloRes.p50Ms} ms  p99 ${helloRes.p99Ms} ms`,
    );
    console.log(
      `GET /api/v1/rollouts/{id}   ${vaneRes.reqPerSec} req/s  p50 ${vaneRes.p50Ms} ms  p99 ${vaneRes.p99Ms} ms`,
    );
    const cpu = (f: Figures) =>
      Object.entries(f.cpuUsPerReq)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');
    console.log(`CPU µs per request: hello-world ${cpu(helloRes)}; vane ${cpu(vaneRes)}`);
    console.log(`ratio ${ratio}× hello-world (target ≥ 0.5×)`);
    console.log(
      `RESULT ${JSON.stringify({ connections: Number(values.connections), seconds: Number(values.seconds), hello: helloRes, get: vaneRes, ratio })}`,
    );
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(
      children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))),
    );
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
