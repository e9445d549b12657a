import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { z } from 'zod';
import { DurationSchema } from './duration.ts';
import { MetricError } from './errors.ts';
import type { MetricProvider, QueryResult } from './types.ts';

/** Where a secret comes from. A file is re-read (at most every 30s) so rotated tokens are picked up. */
const SecretSourceSchema = z
  .strictObject({
    /** Path of a file holding the secret (trailing newline ignored). */
    file: z.string().min(1).optional(),
    /** Name of an environment variable holding the secret, read once when the provider is created. */
    env: z.string().min(1).optional(),
    /** The secret itself (for programmatic use; prefer file or env in configuration files). */
    value: z.string().min(1).optional(),
  })
  .refine((s) => [s.file, s.env, s.value].filter((v) => v !== undefined).length === 1, {
    error: 'give exactly one of file, env or value',
  });

export const PrometheusConfigSchema = z
  .strictObject({
    /** Base URL; may carry a path prefix (https://gateway.example/prometheus). */
    url: z.url({ protocol: /^https?$/, error: 'an http:// or https:// URL, e.g. http://prometheus:9090' }),
    /** Extra headers sent with every query (e.g. a tenant header). Default none. */
    headers: z.record(z.string(), z.string()).default({}),
    /** Bearer token sent as `Authorization: Bearer ...`. Default none. */
    bearerToken: SecretSourceSchema.optional(),
    /** HTTP basic auth. Default none. */
    basicAuth: z.strictObject({ username: z.string().min(1), password: SecretSourceSchema }).optional(),
    tls: z
      .strictObject({
        /** PEM file of the CA that signed Prometheus's (or the gateway's) certificate. Default: the system CAs. */
        caFile: z.string().min(1).optional(),
        /** Accept any certificate. Default false; for test set-ups only. */
        insecureSkipVerify: z.boolean().default(false),
      })
      .default({ insecureSkipVerify: false }),
    /** Timeout of one HTTP attempt. Default 10s. */
    timeout: DurationSchema.default(10_000),
    /** Retries after a network error or a 5xx (never after a 4xx or a timeout). Default 2. */
    retries: z.number().int().min(0).max(10).default(2),
    /** First retry delay; doubles each retry, with jitter, capped at 5s. Default 200ms. */
    retryBackoff: DurationSchema.default(200),
    /** POST (form-encoded, no URL length limit) or GET (for gateways that allow only GET). Default POST. */
    method: z.enum(['POST', 'GET']).default('POST'),
  })
  .refine((c) => !(c.bearerToken && c.basicAuth), {
    error: 'give bearerToken or basicAuth, not both',
    path: ['bearerToken'],
  });

export type PrometheusConfig = z.infer<typeof PrometheusConfigSchema>;
export type PrometheusConfigInput = z.input<typeof PrometheusConfigSchema>;

export interface PrometheusProvider extends MetricProvider {
  /** Closes idle keep-alive connections. */
  close(): void;
}

export interface ProviderOptions {
  /** Environment to read `env` secrets from. Default process.env (read once, here). */
  env?: NodeJS.ProcessEnv;
}

type Secret = () => Promise<string>;

function secretReader(
  src: z.infer<typeof SecretSourceSchema>,
  field: string,
  env: NodeJS.ProcessEnv,
): Secret {
  if (src.value !== undefined) {
    const v = src.value;
    return async () => v;
  }
  if (src.env !== undefined) {
    const v = env[src.env];
    if (!v) throw new Error(`prometheus.${field}.env: environment variable ${src.env} is not set or empty`);
    return async () => v;
  }
  const file = src.file!;
  let cached: { value: string; at: number } | undefined;
  return async () => {
    if (cached && Date.now() - cached.at < 30_000) return cached.value;
    try {
      const value = (await readFile(file, 'utf8')).trim();
      cached = { value, at: Date.now() };
      return value;
    } catch (e) {
      throw new MetricError(
        'config',
        `cannot read prometheus.${field}.file ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
      );
    }
  };
}

/** Prometheus encodes special floats as strings; Number('+Inf') would be NaN, hiding an infinity. */
export function parsePromValue(s: string): number {
  if (s === '+Inf' || s === 'Inf') return Number.POSITIVE_INFINITY;
  if (s === '-Inf') return Number.NEGATIVE_INFINITY;
  if (s === 'NaN') return Number.NaN;
  const n = Number(s);
  if (Number.isNaN(n))
    throw new MetricError('http', `Prometheus returned a value that is not a number: ${s}`);
  return n;
}

interface PromBody {
  status?: string;
  data?: { resultType?: string; result?: unknown };
  errorType?: string;
  error?: string;
  warnings?: string[];
  infos?: string[];
}

type Sample = [number, string];

function toResult(body: PromBody, query: string): QueryResult {
  const warnings = [...(body.warnings ?? []), ...(body.infos ?? []).map((i) => `info: ${i}`)];
  const data = body.data;
  switch (data?.resultType) {
    case 'scalar': {
      const [, v] = data.result as Sample;
      return { type: 'scalar', value: parsePromValue(v), warnings };
    }
    case 'string': {
      const [, v] = data.result as Sample;
      return { type: 'string', value: v, warnings };
    }
    case 'vector':
      return {
        type: 'vector',
        series: (data.result as { metric: Record<string, string>; value: Sample }[]).map((r) => ({
          labels: r.metric,
          value: parsePromValue(r.value[1]),
        })),
        warnings,
      };
    case 'matrix':
      return {
        type: 'matrix',
        series: (data.result as { metric: Record<string, string>; values: Sample[] }[]).map((r) => ({
          labels: r.metric,
          values: r.values.map(([t, v]) => [t, parsePromValue(v)] as [number, number]),
        })),
        warnings,
      };
    default:
      throw new MetricError('http', `Prometheus answered without a known resultType (query: ${query})`, {
        query,
      });
  }
}

const RETRYABLE_NETWORK = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'UND_ERR_SOCKET',
]);

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A MetricProvider over Prometheus's HTTP API, reachable directly or through a gateway.
 * Throws on an invalid config (one line per field) or a missing `env` secret.
 */
export function createPrometheusProvider(
  input: PrometheusConfigInput,
  { env = process.env }: ProviderOptions = {},
): PrometheusProvider {
  const parsed = PrometheusConfigSchema.safeParse(input);
  if (!parsed.success) {
    throw new Error(
      parsed.error.issues
        .map((i) => `prometheus${i.path.map((p) => `.${String(p)}`).join('')}: ${i.message}`)
        .join('\n'),
    );
  }
  const cfg = parsed.data;
  const base = new URL(cfg.url);
  const https = base.protocol === 'https:';
  let ca: Buffer | undefined;
  if (cfg.tls.caFile) {
    try {
      ca = readFileSync(cfg.tls.caFile);
    } catch (e) {
      throw new Error(
        `prometheus.tls.caFile: cannot read ${cfg.tls.caFile}: ${(e as NodeJS.ErrnoException).code}`,
      );
    }
  }
  const agent = https
    ? new HttpsAgent({ keepAlive: true, ca, rejectUnauthorized: !cfg.tls.insecureSkipVerify })
    : new HttpAgent({ keepAlive: true });
  const token = cfg.bearerToken ? secretReader(cfg.bearerToken, 'bearerToken', env) : undefined;
  const password = cfg.basicAuth
    ? secretReader(cfg.basicAuth.password, 'basicAuth.password', env)
    : undefined;
  const prefix = base.pathname.replace(/\/+$/, '');

  async function headers(): Promise<Record<string, string>> {
    const h: Record<string, string> = { Accept: 'application/json', ...cfg.headers };
    if (token) h.Authorization = `Bearer ${await token()}`;
    if (password && cfg.basicAuth) {
      h.Authorization = `Basic ${Buffer.from(`${cfg.basicAuth.username}:${await password()}`).toString('base64')}`;
    }
    return h;
  }

  /** One HTTP exchange; resolves with status and body, rejects with the network error. */
  function exchange(
    url: URL,
    h: Record<string, string>,
    body: string | undefined,
    signal: AbortSignal,
  ): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const req = (https ? httpsRequest : httpRequest)(url, {
        method: cfg.method,
        headers: body
          ? {
              ...h,
              'Content-Type': 'application/x-www-form-urlencoded',
              'Content-Length': Buffer.byteLength(body),
            }
          : h,
        agent,
        signal,
      });
      req.on('error', reject);
      req.on('response', (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
      });
      req.end(body);
    });
  }

  async function call(path: string, params: Record<string, string>, query: string, signal?: AbortSignal) {
    const form = new URLSearchParams(params).toString();
    const url = new URL(base.href);
    url.pathname = `${prefix}${path}`;
    let body: string | undefined;
    if (cfg.method === 'GET') {
      for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    } else body = form;
    const h = await headers();
    let lastError: MetricError | undefined;
    for (let attempt = 0; attempt <= cfg.retries; attempt++) {
      if (attempt > 0) {
        const delay = Math.min(5_000, cfg.retryBackoff * 2 ** (attempt - 1));
        await sleep(delay / 2 + Math.random() * (delay / 2), signal);
      }
      const timeout = AbortSignal.timeout(cfg.timeout);
      const both = signal ? AbortSignal.any([signal, timeout]) : timeout;
      let res: { status: number; text: string };
      try {
        res = await exchange(url, h, body, both);
      } catch (e) {
        if (signal?.aborted) throw signal.reason;
        if (timeout.aborted) {
          throw new MetricError(
            'timeout',
            `Prometheus did not answer within ${cfg.timeout}ms (query: ${query})`,
            {
              query,
            },
          );
        }
        const code = (e as NodeJS.ErrnoException).code ?? '';
        lastError = new MetricError(
          'unreachable',
          `Prometheus at ${base.origin}${prefix} is unreachable: ${code || (e as Error).message}${
            /CERT|SELF_SIGNED|TLS/.test(code)
              ? ' (set prometheus.tls.caFile to the CA that signed its certificate)'
              : ''
          }`,
          { query },
        );
        if (RETRYABLE_NETWORK.has(code) || !code) continue;
        throw lastError;
      }
      let parsedBody: PromBody | undefined;
      try {
        parsedBody = JSON.parse(res.text) as PromBody;
      } catch {
        parsedBody = undefined;
      }
      if (res.status === 200 && parsedBody?.status === 'success') return toResult(parsedBody, query);
      const detail = parsedBody?.error ?? res.text.slice(0, 200).trim();
      if (res.status >= 500) {
        lastError = new MetricError(
          'http',
          `Prometheus answered ${res.status}${detail ? `: ${detail}` : ''} (query: ${query})`,
          { query, status: res.status, errorType: parsedBody?.errorType },
        );
        continue;
      }
      if (res.status === 401 || res.status === 403) {
        throw new MetricError(
          'unauthorized',
          `Prometheus refused the credentials (${res.status}); check prometheus.bearerToken / basicAuth`,
          { query, status: res.status },
        );
      }
      if (res.status === 400 || res.status === 422 || parsedBody?.errorType === 'bad_data') {
        throw new MetricError('bad-query', `Prometheus rejected the query: ${detail} (query: ${query})`, {
          query,
          status: res.status,
          errorType: parsedBody?.errorType,
        });
      }
      throw new MetricError(
        'http',
        `Prometheus answered ${res.status}${detail ? `: ${detail}` : ''} (query: ${query})`,
        { query, status: res.status, errorType: parsedBody?.errorType },
      );
    }
    throw lastError!;
  }

  const timeParam = (d: Date) => (d.getTime() / 1000).toFixed(3);

  return {
    query(promql, opts = {}) {
      const params: Record<string, string> = { query: promql };
      if (opts.time) params.time = timeParam(opts.time);
      return call('/api/v1/query', params, promql, opts.signal);
    },
    queryRange(promql, opts) {
      const params = {
        query: promql,
        start: timeParam(opts.start),
        end: timeParam(opts.end),
        step: String(opts.stepSeconds),
      };
      return call('/api/v1/query_range', params, promql, opts.signal);
    },
    async isOnline() {
      try {
        const r = await call('/api/v1/query', { query: 'vector(1)' }, 'vector(1)');
        return r.type === 'vector' && r.series.length === 1 && r.series[0]?.value === 1;
      } catch {
        return false;
      }
    },
    close() {
      agent.destroy();
    },
  };
}
