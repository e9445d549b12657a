import { execFileSync, spawnSync } from 'node:child_process';

let aptUpdated = false;

/** True when `cmd` is on the PATH. */
export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Makes sure a command from a Debian package is installed: installs the package with apt-get when
 * running as root, and otherwise throws one message saying exactly what to install.
 */
export function ensureCommand(cmd: string, debPackage: string, log: (msg: string) => void = () => {}): void {
  if (hasCommand(cmd)) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot || !hasCommand('apt-get')) {
    throw new Error(
      `${cmd} is not installed and vane cannot install it here: run 'sudo apt-get install -y ${debPackage}' (Debian/Ubuntu) or put ${cmd} on the PATH`,
    );
  }
  log(`installing the Debian package ${debPackage} (for ${cmd})`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    if (!aptUpdated) {
      execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env, timeout: 300_000 });
      aptUpdated = true;
    }
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', debPackage], {
      stdio: 'ignore',
      env,
      timeout: 600_000,
    });
  } catch (e) {
    throw new Error(`apt-get install ${debPackage} failed (${(e as Error).message}); install it by hand`);
  }
  if (!hasCommand(cmd)) throw new Error(`installed ${debPackage} but ${cmd} is still not on the PATH`);
}
