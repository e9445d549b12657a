import type { Logger } from '../observability/logger.ts';
import type { Recorder } from '../observability/recorder.ts';
import type { DomainContext } from '../rollouts/context.ts';

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
  /** API tokens; empty means no authentication (local use). */
  apiTokens?: string[];
  /** The domain; without it only the health routes are served (a worker-only process). */
  domain?: DomainContext;
}

export interface AppEnv {
  Variables: { requestId: string; logger: Logger };
}
