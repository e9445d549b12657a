/**
 * GET /api/v1/rollouts/{id} against a real Redis, side by side with a Hono hello-world in the same
 * run: each server in its own process, autocannon (-c 32) in this one, in alternating 2 s slices.
 * vane runs as `vane api` does (startService, a bearer token, request logging at LOG_LEVEL).
 * Run: npx tsx bench/api-get.ts [--seconds 10] [--connections 32] [--path /healthz]
 * Prints both figures, the ratio, and a last line `RESULT {json}`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

interface Result {
  requests: { average: number };
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
  });
  // Port 0: a free one (the setting itself must be 1-65535).
  const service = await startService({ ...config, port: 0, redisUrl: redisUrl! }, 'api');
  console.log(`PORT ${service.port}`);
  process.once('SIGTERM', () => void service.shutdown('SIGTERM').then(() => process.exit(0)));
}

function child(args: string[]): Promise<{ proc: ChildProcess; port: number }> {
  // BENCH_CPU_PROF=<dir> writes a CPU profile of vane's process there (to see where the time goes).
  const prof =
    process.env.BENCH_CPU_PROF && args[1] === 'vane'
      ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF]
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
}

/**
 * Measures both targets in alternating 2-second slices (after a warm-up of each), so that load
 * from elsewhere on the machine falls on both alike; req/s is the total over the slices, p50 and
 * p99 the median of the slices' figures.
 */
async function compare(
  a: { url: string; headers: Record<string, string> },
  b: { url: string; headers: Record<string, string> },
): Promise<[Figures, Figures]> {
  const connections = Number(values.connections);
  const slices = Math.max(1, Math.round(Number(values.seconds) / 2));
  const run = async (t: { url: string; headers: Record<string, string> }, duration: number) => {
    const r = await autocannon({ url: t.url, connections, duration, headers: t.headers });
    if (r.non2xx || r.errors) throw new Error(`${t.url}: ${r.non2xx} non-2xx, ${r.errors} errors`);
    return r;
  };
  await run(a, 2);
  await run(b, 2);
  const out: Result[][] = [[], []];
  for (let i = 0; i < slices; i++) {
    out[0]!.push(await run(a, 2));
    out[1]!.push(await run(b, 2));
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const figures = (rs: Result[]): Figures => ({
    reqPerSec: Math.round(rs.reduce((s, r) => s + r.requests.average, 0) / rs.length),
    p50Ms: median(rs.map((r) => r.latency.p50)),
    p99Ms: median(rs.map((r) => r.latency.p99)),
  });
  return [figures(out[0]!), figures(out[1]!)];
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
      { url: `http://127.0.0.1:${hello.port}/hello`, headers: {} },
      {
        url: values.path
          ? `http://127.0.0.1:${vane.port}${values.path}`
          : `http://127.0.0.1:${vane.port}/api/v1/rollouts/${rollout.id}`,
        headers: auth,
      },
    );
    const ratio = Math.round((vaneRes.reqPerSec / helloRes.reqPerSec) * 100) / 100;
    console.log(
      `hono hello-world            ${helloRes.reqPerSec} req/s  p50 ${helloRes.p50Ms} ms  p99 ${helloRes.p99Ms} ms`,
    );
    console.log(
      `GET /api/v1/rollouts/{id}   ${vaneRes.reqPerSec} req/s  p50 ${vaneRes.p50Ms} ms  p99 ${vaneRes.p99Ms} ms`,
    );
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
