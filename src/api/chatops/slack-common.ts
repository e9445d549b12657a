import type { Context } from 'hono';
import { escapeSlack } from '../../notify/slack.ts';
import { RolloutError } from '../../rollouts/errors.ts';
import type { Rollout } from '../../rollouts/model.ts';
import type { AppEnv } from '../context.ts';
import { ApiError } from '../errors.ts';
import { readRawBody } from '../hooks/raw-body.ts';
import { verifySlackSignature } from '../hooks/signatures.ts';

/** Slack's requests are small form posts; anything bigger is not one. */
const MAX_BODY_BYTES = 64 * 1024;
/** Slack gives up after 3 s; vane answers before that with what it knows. */
export const SLACK_ANSWER_BUDGET_MS = 2_500;

export interface SlackDoorOptions {
  /** The Slack app's signing secret (VANE_SLACK_SIGNING_SECRET); without it the routes answer 404 saying how to enable them. */
  signingSecret?: string | undefined;
  /** Slack user ids allowed to act (VANE_SLACK_OPERATORS). Default none: reading only. */
  operators?: readonly string[];
  /** Clock (ms) for the replay window. Default Date.now. */
  now?: () => number;
  /** The only origin a click's follow-up (response_url) is posted to. Default https://hooks.slack.com. */
  responseUrlOrigin?: string;
}

/** A reply in Slack's response format; errors are ephemeral (only the caller sees them). */
export interface SlackReply {
  response_type: 'ephemeral' | 'in_channel';
  text: string;
  blocks?: { type: 'section'; text: { type: 'mrkdwn'; text: string } }[];
  replace_original?: boolean;
}

export function reply(text: string, responseType: SlackReply['response_type'] = 'ephemeral'): SlackReply {
  return {
    response_type: responseType,
    text,
    blocks: [{ type: 'section', text: { type: 'mrkdwn', text: text.slice(0, 3000) } }],
  };
}

/** Checks the door is on and the raw bytes carry Slack's signature; returns the bytes. Throws 401/404 in the envelope. */
export async function verifiedSlackBody(c: Context<AppEnv>, opts: SlackDoorOptions): Promise<Buffer> {
  if (!opts.signingSecret) {
    throw new ApiError(
      'NOT_FOUND',
      'the Slack doors are off: set VANE_SLACK_SIGNING_SECRET (the Slack app’s signing secret) in vane to enable /api/v1/chatops/slack',
    );
  }
  const raw = await readRawBody(c.req.raw, MAX_BODY_BYTES);
  const v = verifySlackSignature(
    opts.signingSecret,
    raw,
    {
      timestamp: c.req.header('x-slack-request-timestamp'),
      signature: c.req.header('x-slack-signature'),
    },
    (opts.now ?? Date.now)(),
  );
  if (!v.ok) throw new ApiError('UNAUTHORIZED', v.reason);
  return raw;
}

/** `slack:U123 (alice)`: the acting identity recorded in events. */
export function slackActor(userId: string, userName: string | undefined): string {
  const name = userName?.replace(/[^\w.@-]/g, '').slice(0, 80);
  return `slack:${userId}${name ? ` (${name})` : ''}`;
}

/** Refuses (ephemerally) a user who is not an operator; undefined when they may act. */
export function operatorRefusal(userId: string, opts: SlackDoorOptions): SlackReply | undefined {
  if (opts.operators?.includes(userId)) return undefined;
  return reply(
    `:no_entry: <@${escapeSlack(userId)}> is not a vane operator, so this changes nothing. Reading (list, status, help) is open; to act, ask an admin to add your Slack user id ${escapeSlack(userId)} to VANE_SLACK_OPERATORS.`,
  );
}

/** Runs an action within Slack's budget; a domain error or a slow dependency becomes an ephemeral reply. */
export async function withinBudget(
  c: Context<AppEnv>,
  run: () => Promise<SlackReply>,
  budgetMs = SLACK_ANSWER_BUDGET_MS,
): Promise<SlackReply> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<SlackReply>((resolve) => {
    timer = setTimeout(
      () =>
        resolve(
          reply(
            `:hourglass: vane did not finish within ${budgetMs / 1000}s (is Redis slow?); check with \`/vane status\` in a moment. Request id ${c.get('requestId')}.`,
          ),
        ),
      budgetMs,
    );
  });
  try {
    return await Promise.race([run(), late]);
  } catch (e) {
    if (e instanceof RolloutError || e instanceof ApiError) return reply(`:x: ${escapeSlack(e.message)}`);
    (c.get('logger') ?? console).error({ err: e }, 'slack command failed');
    return reply(`:x: vane hit an internal error; quote request id ${c.get('requestId')} when reporting it.`);
  } finally {
    clearTimeout(timer);
  }
}

/** One line about a rollout: id, target, canary version, phase, weights. */
export function rolloutLine(r: Rollout): string {
  const t = r.spec.target;
  const version = r.spec.canary.labels.version ?? r.spec.canary.subset;
  const gate = r.gate ? ` · waiting at ${r.gate.key}` : '';
  return `\`${escapeSlack(r.id)}\` ${escapeSlack(`${t.namespace}/${t.virtualService}`)} ${escapeSlack(version)} — *${r.phase}* · canary ${r.weights.canary}%${escapeSlack(gate)}`;
}
