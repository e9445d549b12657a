import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { Duration } from './duration.ts';

/**
 * Every setting vane reads, in one schema. Each key is read from its environment variable
 * (see {@link ENV}) and, below that, from the optional YAML file named by VANE_CONFIG.
 * Parsed once at start-up; nothing reads process.env after that.
 */

/** An integer setting; every failure says the allowed range. */
function intIn(min: number, max: number) {
  const error = `an integer from ${min} to ${max}`;
  return z.coerce.number({ error }).int({ error }).min(min, { error }).max(max, { error });
}

export const ConfigSchema = z.object({
  /** Port of the HTTP API. Default 8080. */
  port: intIn(1, 65535).default(8080),
  /** Address the HTTP API binds to. Default 0.0.0.0 when API tokens are configured, 127.0.0.1 otherwise. */
  host: z.string().min(1).optional(),
  /** Redis URL (redis://[user:pass@]host:port[/db]); unset means `vane start` runs a private redis-server. */
  redisUrl: z
    .string()
    .regex(/^rediss?:\/\//, 'a URL starting with redis:// or rediss://')
    .optional(),
  /** Prefix of every Redis key and BullMQ queue, so several installations can share one Redis. Default "vane". */
  keyPrefix: z
    .string()
    .regex(/^[a-zA-Z0-9_-]+$/, 'letters, digits, - and _')
    .default('vane'),
  /** pino level. Default info. */
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** json, pretty, or auto (pretty on a terminal, JSON otherwise). Default auto. */
  logFormat: z.enum(['json', 'pretty', 'auto']).default('auto'),
  /** How long shutdown may take before the process exits anyway. Default 20s. */
  shutdownTimeout: Duration.default(20_000),
  /** Concurrent jobs per worker process. Default 50 (ticks are mostly I/O). */
  workerConcurrency: intIn(1, 10_000).default(50),
  /**
   * Rollout ticks a worker process runs at once. Default 500: a guard tick mostly waits (its
   * batched Prometheus query gathers for 100 ms), so 1,000 ticks/s keep about 150 in flight.
   */
  tickConcurrency: intIn(1, 100_000).default(500),
  /** Path of a kubeconfig; unset means in-cluster config when running in a pod, otherwise none (sandbox). */
  kubeconfig: z.string().min(1).optional(),
  /** Kubernetes context to use from the kubeconfig. Default: the kubeconfig's current context. */
  kubeContext: z.string().min(1).optional(),
  /** Base URL of Prometheus (may carry a path prefix). */
  prometheusUrl: z.string().url().optional(),
  /** Comma-separated API tokens; when empty the write API is open (local use only). */
  apiTokens: z
    .string()
    .default('')
    .transform((s) =>
      s
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean),
    ),
  /** Folder for the private redis-server and sandbox data. Default .vane */
  dataDir: z.string().min(1).default('.vane'),
  /** `none` serves the API without tokens on any address (a warning is logged). Default tokens. */
  auth: z.enum(['tokens', 'none']).default('tokens'),
  /** Bearer token /metrics requires; unset means /metrics is open. */
  metricsToken: z.string().min(16, 'a token of at least 16 characters').optional(),
  /** Whether webhooks and notifications may go to loopback addresses (127.0.0.0/8, ::1). Default false. */
  allowLoopbackWebhooks: z
    .enum(['true', 'false', '1', '0'], { error: 'true or false' })
    .or(z.boolean())
    .default(false)
    .transform((v) => v === true || v === 'true' || v === '1'),
  /** How long an ended rollout and its events are kept. Default 30 days. */
  retention: z
    .string()
    .regex(/^\d+(s|m|h|d)$/, 'a duration such as 12h or 30d')
    .default('30d')
    .transform((s) => Number(s.slice(0, -1)) * { s: 1, m: 60, h: 3600, d: 86_400 }[s.slice(-1) as 's']),
  /** Mutating API requests per token per minute (counted in Redis, across API replicas). Default 120. */
  rateLimit: intIn(1, 1_000_000).default(120),
  /** How long an API request may take before it is answered 504. Default 15s. */
  requestTimeout: Duration.default(15_000),
  /**
   * Rollout documents the API keeps in process for GET /api/v1/rollouts/{id}, kept fresh by
   * Redis's client-side caching (CLIENT TRACKING); 0 reads Redis on every request. Default 10000.
   */
  readCache: intIn(0, 1_000_000).default(10_000),
  /**
   * The longest a kept document may be served after another process changed it in Redis (the
   * bound on the invalidation's delay, enforced with PINGs). From 5ms to 1s. Default 50ms.
   */
  readCacheMaxLag: Duration.pipe(
    z
      .number()
      .min(5, { error: 'a duration from 5ms to 1s' })
      .max(1_000, { error: 'a duration from 5ms to 1s' }),
  ).default(50),
  /** Secret of POST /api/v1/hooks/ci (HMAC-SHA256 signatures); unset means the CI webhook is off. */
  ciWebhookSecret: z.string().min(16, 'at least 16 characters').optional(),
  /** Slack app's signing secret for /api/v1/chatops/slack*; unset means the Slack doors are off. */
  slackSigningSecret: z.string().min(8, 'at least 8 characters').optional(),
  /** Comma-separated Slack user ids (U…) allowed to act (promote, approve, abort, pause, resume). Default none. */
  slackOperators: z
    .string()
    .default('')
    .transform((s) =>
      s
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean),
    ),
});

export const SCOPES = ['read', 'trigger', 'operate', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** One API token of the YAML file, stored as the SHA-256 of the token (never the token itself). */
export const ApiTokenEntrySchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._@:-]{1,100}$/, 'letters, digits and . _ @ : -, at most 100'),
  sha256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, 'the hex SHA-256 of the token (64 hex digits): printf %s TOKEN | sha256sum')
    .transform((s) => s.toLowerCase()),
  scopes: z.array(z.enum(SCOPES)).min(1),
  namespaces: z.array(z.string().min(1)).min(1).optional(),
});
export type ApiTokenEntry = z.infer<typeof ApiTokenEntrySchema>;

/** Settings only the YAML file can hold (structured values). */
export const FileOnlySchema = z.object({
  /** Named rollout templates: per-service defaults merged under a request's own fields. */
  templates: z
    .record(z.string().regex(/^[a-z0-9][-a-z0-9.]{0,62}$/), z.record(z.string(), z.unknown()))
    .default({}),
  /** Prometheus connection (url, headers, bearerToken, basicAuth, tls, timeout, retries); PROMETHEUS_URL overrides the url. */
  prometheus: z.record(z.string(), z.unknown()).optional(),
});

export type Config = z.infer<typeof ConfigSchema> &
  z.infer<typeof FileOnlySchema> & {
    /** Tokens with scopes from the YAML file (`apiTokens: [{ name, sha256, scopes, namespaces? }]`). */
    scopedTokens: ApiTokenEntry[];
  };

/** The environment variable of each setting. */
export const ENV: Record<keyof z.infer<typeof ConfigSchema>, string> = {
  port: 'PORT',
  host: 'HOST',
  redisUrl: 'REDIS_URL',
  keyPrefix: 'VANE_KEY_PREFIX',
  logLevel: 'LOG_LEVEL',
  logFormat: 'LOG_FORMAT',
  shutdownTimeout: 'VANE_SHUTDOWN_TIMEOUT',
  workerConcurrency: 'VANE_WORKER_CONCURRENCY',
  tickConcurrency: 'VANE_TICK_CONCURRENCY',
  kubeconfig: 'KUBECONFIG',
  kubeContext: 'VANE_KUBE_CONTEXT',
  prometheusUrl: 'PROMETHEUS_URL',
  apiTokens: 'VANE_API_TOKENS',
  dataDir: 'VANE_DATA_DIR',
  auth: 'VANE_AUTH',
  metricsToken: 'VANE_METRICS_TOKEN',
  allowLoopbackWebhooks: 'VANE_ALLOW_LOOPBACK_WEBHOOKS',
  retention: 'VANE_RETENTION',
  rateLimit: 'VANE_RATE_LIMIT',
  requestTimeout: 'VANE_REQUEST_TIMEOUT',
  readCache: 'VANE_READ_CACHE',
  readCacheMaxLag: 'VANE_READ_CACHE_MAX_LAG',
  ciWebhookSecret: 'VANE_CI_WEBHOOK_SECRET',
  slackSigningSecret: 'VANE_SLACK_SIGNING_SECRET',
  slackOperators: 'VANE_SLACK_OPERATORS',
};

const SECRET_SETTINGS = new Set<string>(['ciWebhookSecret', 'slackSigningSecret']);

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Builds the configuration from an environment and the optional YAML file it names (VANE_CONFIG).
 * Throws ConfigError with one line naming the variable, the value given and what is allowed.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  let fromFile: Record<string, unknown> = {};
  let scopedTokens: ApiTokenEntry[] = [];
  const file = env.VANE_CONFIG;
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ConfigError(`VANE_CONFIG=${file}: cannot read the file (${(e as Error).message})`);
    }
    const doc = parseYaml(text) ?? {};
    if (typeof doc !== 'object' || Array.isArray(doc)) {
      throw new ConfigError(`VANE_CONFIG=${file}: expected a YAML mapping of settings`);
    }
    fromFile = { ...(doc as Record<string, unknown>) };
    // `apiTokens` in the file is either the plain list of VANE_API_TOKENS or tokens with scopes.
    if (Array.isArray(fromFile.apiTokens)) {
      const list = z.array(ApiTokenEntrySchema).max(1000).safeParse(fromFile.apiTokens);
      if (!list.success) {
        const issue = list.error.issues[0]!;
        throw new ConfigError(
          `VANE_CONFIG=${file}: apiTokens.${issue.path.map(String).join('.')}: ${issue.message}`,
        );
      }
      const names = new Set<string>();
      for (const t of list.data) {
        if (names.has(t.name))
          throw new ConfigError(`VANE_CONFIG=${file}: apiTokens: duplicate name '${t.name}'`);
        names.add(t.name);
      }
      scopedTokens = list.data;
      delete fromFile.apiTokens;
    }
    const fileOnly = Object.keys(FileOnlySchema.shape);
    const unknown = Object.keys(fromFile).filter((k) => !(k in ENV) && !fileOnly.includes(k));
    if (unknown.length) {
      throw new ConfigError(
        `VANE_CONFIG=${file}: unknown setting '${unknown[0]}'; settings are: ${[...Object.keys(ENV), ...fileOnly].join(', ')}`,
      );
    }
  }
  const input: Record<string, unknown> = {};
  for (const [key, name] of Object.entries(ENV) as [keyof typeof ENV, string][]) {
    const v = env[name];
    if (v !== undefined && v !== '') input[key] = v;
    else if (fromFile[key] !== undefined) input[key] = fromFile[key];
  }
  const structured = FileOnlySchema.safeParse(fromFile);
  if (!structured.success) {
    const issue = structured.error.issues[0]!;
    throw new ConfigError(`VANE_CONFIG=${file}: ${issue.path.map(String).join('.')}: ${issue.message}`);
  }
  const parsed = ConfigSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = String(issue.path[0]) as keyof typeof ENV;
    const fromEnv = env[ENV[key]] !== undefined && env[ENV[key]] !== '';
    const where = fromEnv ? ENV[key] : `${key} in ${file}`;
    // A secret's value never reaches an error message (and so the logs).
    const shown = SECRET_SETTINGS.has(key) ? '(hidden)' : JSON.stringify(input[key]);
    throw new ConfigError(`invalid setting ${where}=${shown}: expected ${describeIssue(issue)}`);
  }
  return { ...parsed.data, ...structured.data, scopedTokens };
}

function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_value':
      return `one of ${issue.values.map((v) => String(v)).join(', ')}`;
    default:
      return issue.message;
  }
}
