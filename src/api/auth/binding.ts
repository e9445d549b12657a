import { isIP } from 'node:net';

export interface Binding {
  host: string;
  /** A line for the start-up log. */
  note?: string;
  level?: 'info' | 'warn';
  /** Set when the process must not start: one line naming the fix. */
  error?: string;
}

/** Whether an address is loopback only (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
}

/**
 * Where the API may listen. With no token it listens on loopback only, safe by default; an
 * address reachable from elsewhere needs tokens, or an explicit VANE_AUTH=none.
 */
export function apiBinding(opts: {
  host?: string | undefined;
  tokens: number;
  auth: 'tokens' | 'none';
  /** A worker serves only probes and /metrics: no rollout API to protect. */
  role: 'api' | 'worker' | 'all';
}): Binding {
  if (opts.role === 'worker') return { host: opts.host ?? '0.0.0.0' };
  if (opts.tokens > 0) return { host: opts.host ?? '0.0.0.0' };
  if (opts.auth === 'none') {
    const host = opts.host ?? '0.0.0.0';
    return isLoopbackHost(host)
      ? { host }
      : {
          host,
          level: 'warn',
          note: `VANE_AUTH=none: the API on ${host} has no authentication; anyone who reaches it can start and abort rollouts`,
        };
  }
  if (opts.host === undefined) {
    return {
      host: '127.0.0.1',
      level: 'info',
      note: 'no API token configured: listening on 127.0.0.1 only (set VANE_API_TOKENS to serve other hosts)',
    };
  }
  if (!isLoopbackHost(opts.host)) {
    return {
      host: opts.host,
      error: `HOST=${opts.host} serves the API beyond this machine but no API token is configured; set VANE_API_TOKENS (or apiTokens in VANE_CONFIG), or VANE_AUTH=none to run without authentication`,
    };
  }
  return { host: opts.host, level: 'info', note: `no API token configured: listening on ${opts.host} only` };
}
