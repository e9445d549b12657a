import type { DomainContext } from '../../rollouts/context.ts';
import type { App } from '../app.ts';
import { registerSlackCommands } from '../chatops/slack.ts';
import { registerSlackInteractive } from '../chatops/slack-interactive.ts';
import type { DoorsOptions } from '../context.ts';
import { registerCiHook } from './ci.ts';

/** Paths whose callers prove themselves with a signature over the body instead of a bearer token. */
const SIGNED_PREFIXES = ['/api/v1/hooks/', '/api/v1/chatops/'];

export function isSignedDoor(path: string): boolean {
  return SIGNED_PREFIXES.some((p) => path.startsWith(p));
}

/** The CI webhook and the Slack doors, each off (404 naming its setting) while its secret is unset. */
export function registerSignedDoors(app: App, ctx: DomainContext, doors: DoorsOptions): void {
  const now = doors.now ?? Date.now;
  registerCiHook(app, ctx, { secret: doors.ciWebhookSecret, now });
  const slack = {
    signingSecret: doors.slackSigningSecret,
    operators: doors.slackOperators ?? [],
    now,
    ...(doors.slackResponseOrigin ? { responseUrlOrigin: doors.slackResponseOrigin } : {}),
  };
  registerSlackCommands(app, ctx, slack);
  registerSlackInteractive(app, ctx, slack);
}

/** The doors' settings from the configuration. */
export function doorsFromConfig(config: {
  ciWebhookSecret?: string | undefined;
  slackSigningSecret?: string | undefined;
  slackOperators?: string[];
}): DoorsOptions {
  return {
    ciWebhookSecret: config.ciWebhookSecret,
    slackSigningSecret: config.slackSigningSecret,
    slackOperators: config.slackOperators ?? [],
  };
}
