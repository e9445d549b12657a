import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureCommand } from '../../src/sandbox/system-packages.ts';

/**
 * Once per test run: installs redis-server and prometheus when missing (or fails with what to
 * install), and gives the run a temporary folder. At the end every process a test started and
 * did not stop (a crashed test file) is killed through the pid files left there.
 */
export default function setup() {
  ensureCommand('redis-server', 'redis-server', (m) => console.log(`test set-up: ${m}`));
  ensureCommand('prometheus', 'prometheus', (m) => console.log(`test set-up: ${m}`));
  const runDir = mkdtempSync(join(tmpdir(), 'vane-test-'));
  process.env.VANE_TEST_RUN_DIR = runDir;
  // Test receivers listen on 127.0.0.1; the outbound guard refuses loopback unless allowed.
  process.env.VANE_ALLOW_LOOPBACK_WEBHOOKS ??= '1';
  return () => {
    const pids = join(runDir, 'pids');
    try {
      for (const f of readdirSync(pids)) {
        const pid = Number(readFileSync(join(pids, f), 'utf8'));
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    } catch {
      // no pid folder: nothing was started
    }
    rmSync(runDir, { recursive: true, force: true });
  };
}
