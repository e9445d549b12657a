import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ManagedProcess,
  type PrometheusOptions,
  type ScrapeTarget,
  startAlertmanager,
  startPrometheus,
  startRedisServer,
} from '../../src/sandbox/processes.ts';

function runDir(): string {
  const dir = process.env.VANE_TEST_RUN_DIR ?? mkdtempSync(join(tmpdir(), 'vane-test-'));
  mkdirSync(join(dir, 'pids'), { recursive: true });
  return dir;
}

/** Records the pid so the global teardown kills it even if this test file crashes. */
function tracked(proc: ManagedProcess, dir: string): ManagedProcess {
  const pidFile = join(runDir(), 'pids', String(proc.pid));
  writeFileSync(pidFile, String(proc.pid));
  return {
    ...proc,
    async stop() {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
      try {
        unlinkSync(pidFile);
      } catch {
        // already removed
      }
    },
  };
}

/** A private redis-server on a free port with its data in a temporary folder. */
export async function startTestRedis(): Promise<ManagedProcess> {
  const dir = mkdtempSync(join(runDir(), 'redis-'));
  return tracked(await startRedisServer({ dir }), dir);
}

/** A private Prometheus on a free port scraping the given targets every `scrapeInterval` (default 1s). */
export async function startTestPrometheus(
  targets: ScrapeTarget[],
  scrapeInterval = '1s',
  more: Omit<PrometheusOptions, 'dir' | 'targets' | 'scrapeInterval'> & {
    /** Fills the data folder before Prometheus starts (e.g. with promtool's blocks). */
    prepare?: (dataDir: string) => void;
  } = {},
): Promise<ManagedProcess> {
  const dir = mkdtempSync(join(runDir(), 'prometheus-'));
  const { prepare, ...opts } = more;
  if (prepare) {
    mkdirSync(join(dir, 'data'), { recursive: true });
    prepare(join(dir, 'data'));
  }
  return tracked(await startPrometheus({ dir, targets, scrapeInterval, ...opts }), dir);
}

/** A private Alertmanager on a free port, clustering off, with the given alertmanager.yml. */
export async function startTestAlertmanager(config: string): Promise<ManagedProcess> {
  const dir = mkdtempSync(join(runDir(), 'alertmanager-'));
  return tracked(await startAlertmanager({ dir, config }), dir);
}

/** Polls `fn` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function eventually<T>(
  fn: () => Promise<T | undefined>,
  timeoutMs = 20_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`condition not met after ${timeoutMs}ms${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
