import type { ApiTokenEntry } from '../config.ts';
import type { Logger } from '../observability/logger.ts';
import type { Recorder } from '../observability/recorder.ts';
import type { Redis } from '../redis.ts';
import type { DomainContext } from '../rollouts/context.ts';
import type { StoredReads } from '../rollouts/read-cache.ts';
import type { Principal } from './auth/tokens.ts';
import type { EventStreamOptions } from './rollouts/events.ts';

/** A dependency /readyz checks; `check` rejects with the reason when it is not usable. */
export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

/** Everything routes need, built once per process and handed to newApp(). */
export interface ApiDeps {
  logger: Logger;
  recorder: Recorder;
  readiness: ReadinessCheck[];
  /** Plain API tokens (VANE_API_TOKENS), each with every scope; with no token at all the caller is `local`. */
  apiTokens?: string[];
  /** Tokens with scopes and namespaces, by hash (apiTokens in VANE_CONFIG). */
  scopedTokens?: ApiTokenEntry[];
  /** Bearer token /metrics requires; unset means open. */
  metricsToken?: string;
  /** Per-token limit of mutating requests, counted in this Redis (so it holds across replicas). */
  rateLimit?: { redis: Redis; prefix: string; perMinute: number };
  /** How long a request may take before it is answered 504, in ms. Default 15000. */
  requestTimeoutMs?: number;
  /** The domain; without it only the health routes are served (a worker-only process). */
  domain?: DomainContext;
  /** Where GET /api/v1/rollouts/{id} reads: default the domain's store; the service passes its RolloutReadCache. */
  rolloutReads?: StoredReads;
  /** The doors signed by their callers (CI webhook, Slack); each is off while its secret is unset. */
  doors?: DoorsOptions;
  /** SSE streams: how many at once, heartbeat period. */
  eventStreams?: EventStreamOptions;
}

/** Secrets and operators of the signed doors, from the settings (VANE_CI_WEBHOOK_SECRET, VANE_SLACK_*). */
export interface DoorsOptions {
  ciWebhookSecret?: string | undefined;
  slackSigningSecret?: string | undefined;
  /** Slack user ids allowed to act. Default none. */
  slackOperators?: string[];
  /** Clock (ms) of the signature time windows. Default Date.now. */
  now?: () => number;
  /** The only origin Slack follow-ups (response_url) go to. Default https://hooks.slack.com. */
  slackResponseOrigin?: string;
}

export interface AppEnv {
  Variables: { requestId: string; logger: Logger; principal: Principal };
}
