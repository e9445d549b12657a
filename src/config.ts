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
  /** Address the HTTP API binds to. Default 0.0.0.0. */
  host: z.string().min(1).default('0.0.0.0'),
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

/** Settings only the YAML file can hold (structured values). */
export const FileOnlySchema = z.object({
  /** Named rollout templates: per-service defaults merged under a request's own fields. */
  templates: z
    .record(z.string().regex(/^[a-z0-9][-a-z0-9.]{0,62}$/), z.record(z.string(), z.unknown()))
    .default({}),
  /** Prometheus connection (url, headers, bearerToken, basicAuth, tls, timeout, retries); PROMETHEUS_URL overrides the url. */
  prometheus: z.record(z.string(), z.unknown()).optional(),
});

export type Config = z.infer<typeof ConfigSchema> & z.infer<typeof FileOnlySchema>;

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
  kubeconfig: 'KUBECONFIG',
  kubeContext: 'VANE_KUBE_CONTEXT',
  prometheusUrl: 'PROMETHEUS_URL',
  apiTokens: 'VANE_API_TOKENS',
  dataDir: 'VANE_DATA_DIR',
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
    fromFile = doc as Record<string, unknown>;
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
  return { ...parsed.data, ...structured.data };
}

function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_value':
      return `one of ${issue.values.map((v) => String(v)).join(', ')}`;
    default:
      return issue.message;
  }
}
