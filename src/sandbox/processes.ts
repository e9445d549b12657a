import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ensureCommand } from './system-packages.ts';

/** A child process this process started and must stop. */
export interface ManagedProcess {
  readonly pid: number;
  readonly port: number;
  /** Base URL (http://127.0.0.1:port or redis://127.0.0.1:port). */
  readonly url: string;
  /** Output collected so far, for error messages. */
  output(): string;
  stop(): Promise<void>;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // A crashed parent must not leave servers behind.
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

function startManaged(
  cmd: string,
  args: string[],
  port: number,
  url: string,
  ready: () => Promise<boolean>,
  timeoutMs: number,
): Promise<ManagedProcess> {
  // A process group of its own: Ctrl-C on a terminal signals the whole foreground group, and a
  // Redis or Prometheus that died with it would leave vane's graceful shutdown nothing to talk to.
  // This process stops them itself, in order (and kills them when it exits).
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  track(child);
  let out = '';
  const keep = (b: Buffer) => {
    out = (out + b.toString()).slice(-8_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill('SIGTERM');
    });
  const proc: ManagedProcess = { pid: child.pid ?? -1, port, url, output: () => out, stop };
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    child.once('exit', (code, signal) => {
      exited = true;
      reject(new Error(`${cmd} exited (${code ?? signal}) before it was ready:\n${out}`));
    });
    child.once('error', (e) => reject(new Error(`cannot start ${cmd}: ${e.message}`)));
    const poll = async () => {
      if (exited) return;
      if (await ready().catch(() => false)) return resolve(proc);
      if (Date.now() > deadline) {
        await stop();
        return reject(new Error(`${cmd} was not ready after ${timeoutMs}ms:\n${out}`));
      }
      setTimeout(poll, 50);
    };
    void poll();
  });
}

export interface RedisServerOptions {
  /** Folder for its data (created). */
  dir: string;
  /** Default: a free port. */
  port?: number;
  /** Persist to an append-only file in dir. Default false. */
  persist?: boolean;
}

/** Starts a private redis-server on 127.0.0.1 (installing the Debian package when missing and allowed). */
export async function startRedisServer({
  dir,
  port,
  persist = false,
}: RedisServerOptions): Promise<ManagedProcess> {
  ensureCommand('redis-server', 'redis-server');
  mkdirSync(dir, { recursive: true });
  const p = port ?? (await freePort());
  const args = [
    '--port',
    String(p),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    persist ? 'yes' : 'no',
    // BullMQ requires that Redis never evicts its keys.
    '--maxmemory-policy',
    'noeviction',
    '--protected-mode',
    'no',
  ];
  return startManaged(
    'redis-server',
    args,
    p,
    `redis://127.0.0.1:${p}`,
    () => tcpAnswers(p, '*1\r\n$4\r\nPING\r\n', '+PONG'),
    15_000,
  );
}

export interface ScrapeTarget {
  job: string;
  /** host:port */
  target: string;
  metricsPath?: string;
}

export interface PrometheusOptions {
  dir: string;
  port?: number;
  targets: ScrapeTarget[];
  /** Default 1s. */
  scrapeInterval?: string;
  /** A rule file's YAML (recording and alerting rules), evaluated every scrape interval. */
  rules?: string;
  /** Alertmanagers (host:port) that firing alerts are sent to. */
  alertmanagers?: string[];
  /** How long samples are kept. Default 1h. */
  retention?: string;
}

/** Starts a private Prometheus scraping the given targets (installing the Debian package when missing and allowed). */
export async function startPrometheus({
  dir,
  port,
  targets,
  scrapeInterval = '1s',
  rules,
  alertmanagers = [],
  retention = '1h',
}: PrometheusOptions): Promise<ManagedProcess> {
  ensureCommand('prometheus', 'prometheus');
  mkdirSync(join(dir, 'data'), { recursive: true });
  const p = port ?? (await freePort());
  const config = [
    'global:',
    `  scrape_interval: ${scrapeInterval}`,
    `  evaluation_interval: ${scrapeInterval}`,
    ...(rules ? ['rule_files:', `  - ${JSON.stringify(join(dir, 'rules.yml'))}`] : []),
    ...(alertmanagers.length
      ? [
          'alerting:',
          '  alertmanagers:',
          '    - static_configs:',
          `        - targets: ${JSON.stringify(alertmanagers)}`,
        ]
      : []),
    'scrape_configs:',
    ...targets.flatMap((t) => [
      `  - job_name: ${JSON.stringify(t.job)}`,
      `    metrics_path: ${JSON.stringify(t.metricsPath ?? '/metrics')}`,
      '    static_configs:',
      `      - targets: [${JSON.stringify(t.target)}]`,
    ]),
  ].join('\n');
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, `${config}\n`);
  if (rules) writeFileSync(join(dir, 'rules.yml'), rules);
  const url = `http://127.0.0.1:${p}`;
  const args = [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${p}`,
    '--web.enable-lifecycle',
    `--storage.tsdb.retention.time=${retention}`,
    '--log.level=warn',
  ];
  const ready = async () => (await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1_000) })).ok;
  return startManaged('prometheus', args, p, url, ready, 60_000);
}

export interface AlertmanagerOptions {
  dir: string;
  port?: number;
  /** The alertmanager.yml (routes and receivers). */
  config: string;
}

/** Starts a private Alertmanager (Debian's prometheus-alertmanager) with clustering off, on a free port. */
export async function startAlertmanager({ dir, port, config }: AlertmanagerOptions): Promise<ManagedProcess> {
  ensureCommand('prometheus-alertmanager', 'prometheus-alertmanager');
  mkdirSync(join(dir, 'data'), { recursive: true });
  const p = port ?? (await freePort());
  const configFile = join(dir, 'alertmanager.yml');
  writeFileSync(configFile, config);
  const url = `http://127.0.0.1:${p}`;
  const args = [
    `--config.file=${configFile}`,
    `--storage.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${p}`,
    // An empty address turns the gossip cluster off: no port of its own, no peers.
    '--cluster.listen-address=',
    '--log.level=warn',
  ];
  const ready = async () => (await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1_000) })).ok;
  return startManaged('prometheus-alertmanager', args, p, url, ready, 60_000);
}

function tcpAnswers(port: number, send: string, expect: string): Promise<boolean> {
  return import('node:net').then(
    ({ connect }) =>
      new Promise<boolean>((resolve) => {
        const sock = connect(port, '127.0.0.1');
        const done = (v: boolean) => {
          sock.destroy();
          resolve(v);
        };
        sock.setTimeout(1_000, () => done(false));
        sock.on('error', () => done(false));
        sock.on('connect', () => sock.write(send));
        sock.on('data', (d) => done(d.toString().startsWith(expect)));
      }),
  );
}
