/**
 * The sweep every worker runs for active rollouts without a due tick: its time and its Redis
 * commands at N active rollouts, with none missing and with 1% missing. The rollouts are placed in
 * the store's phase index directly and each gets a due time an hour away, as a running system has them.
 * Run: npx tsx bench/tick-sweep.ts [--rollouts 10000] [--runs 5]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connectRedis } from '../src/redis.ts';
import { startRedisServer } from '../src/sandbox/processes.ts';
import { buildTestDomain } from '../test/helpers/domain.ts';

const { values } = parseArgs({
  options: {
    rollouts: { type: 'string', default: '10000' },
    runs: { type: 'string', default: '5' },
  },
});
const N = Number(values.rollouts);
const RUNS = Number(values.runs);

const dir = mkdtempSync(join(tmpdir(), 'vane-bench-sweep-'));
const server = await startRedisServer({ dir: join(dir, 'redis') });
const domain = buildTestDomain({ redisUrl: server.url });
const admin = connectRedis(server.url, { role: 'client' });

/** Redis commands served so far (all clients, those run inside scripts included) and client round trips of SSCAN and EVAL. */
async function commands(): Promise<{ all: number; trips: number }> {
  const stats = await admin.info('stats');
  const cmd = await admin.info('commandstats');
  const calls = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(cmd)?.[1] ?? 0);
  return {
    all: Number(/total_commands_processed:(\d+)/.exec(stats)?.[1] ?? 0),
    trips: calls('sscan') + calls('eval'),
  };
}

try {
  const ids = Array.from({ length: N }, (_, i) => `ro-bench${String(i).padStart(6, '0')}`);
  const phaseKey = `${domain.prefix}:r:idx:phase:progressing`;
  for (let i = 0; i < N; i += 1000) await domain.redis.sadd(phaseKey, ...ids.slice(i, i + 1000));
  const later = Date.now() + 3_600_000;
  for (let i = 0; i < N; i += 1000) {
    await domain.redis.zadd(
      `${domain.prefix}:ticks:due`,
      ...ids.slice(i, i + 1000).flatMap((id) => [later, id]),
    );
  }

  const measure = async (label: string, before: () => Promise<void>) => {
    const times: number[] = [];
    let cmds = 0;
    let trips = 0;
    let added = 0;
    for (let r = 0; r < RUNS; r++) {
      await before();
      const c0 = await commands();
      const t0 = performance.now();
      added = await domain.ticks.sweep(domain.ctx.store);
      times.push(performance.now() - t0);
      const c1 = await commands();
      cmds = c1.all - c0.all - 2; // the two INFO calls
      trips = c1.trips - c0.trips;
    }
    times.sort((a, b) => a - b);
    console.log(
      `${label}: median ${times[Math.floor(RUNS / 2)]!.toFixed(1)} ms, max ${times.at(-1)!.toFixed(1)} ms, ${trips} SSCAN/EVAL round trips, ${cmds} Redis commands in all, ${added} ticks re-added`,
    );
  };

  await measure(`${N} active rollouts, none missing`, async () => {});
  const missing = ids.filter((_, i) => i % 100 === 0);
  await measure(`${N} active rollouts, ${missing.length} ticks missing`, async () => {
    for (const id of missing) await domain.ticks.forget(id);
  });
} finally {
  await admin.quit();
  await domain.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
