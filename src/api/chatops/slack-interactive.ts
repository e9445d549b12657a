import { z } from '@hono/zod-openapi';
import { escapeSlack, parseGateAction, SLACK_ACTIONS } from '../../notify/slack.ts';
import type { DomainContext } from '../../rollouts/context.ts';
import { approveGate, sendCommand } from '../../rollouts/verbs.ts';
import type { App } from '../app.ts';
import { errorResponses } from '../errors.ts';
import {
  operatorRefusal,
  reply,
  rolloutLine,
  type SlackDoorOptions,
  type SlackReply,
  slackActor,
  verifiedSlackBody,
  withinBudget,
} from './slack-common.ts';

/**
 * The parts of Slack's block_actions payload vane reads. Slack's payload carries much more (the
 * message, the container, the team) and grows over time, so the rest is ignored: the signature,
 * not the shape, makes it trustworthy.
 */
const BlockActionsSchema = z.object({
  type: z.string(),
  user: z.object({
    id: z.string().regex(/^[UW][A-Z0-9]{1,30}$/, 'a Slack user id'),
    username: z.string().max(200).optional(),
    name: z.string().max(200).optional(),
  }),
  actions: z
    .array(z.object({ action_id: z.string().max(255), value: z.string().max(2000).optional() }))
    .min(1)
    .max(25),
  /** Where a follow-up message goes (Slack ignores the HTTP answer to a click). */
  response_url: z.string().max(2000).optional(),
  /** The message the button was on. */
  message: z.object({ blocks: z.array(z.record(z.string(), z.unknown())).max(50).optional() }).optional(),
});

type BlockActions = z.infer<typeof BlockActionsSchema>;

/**
 * Posts the outcome of a click to Slack's response_url, only when it is on `origin` (Slack's own
 * host), with a deadline and no redirects; never throws. A click that acted replaces the message
 * with its buttons gone and who did what in their place (no second click on a used gate); a refusal
 * is shown to the clicker alone.
 */
export async function followUp(
  payload: BlockActions,
  answer: SlackReply,
  opts: { origin: string; timeoutMs?: number; log: { warn(o: object, msg: string): void } },
): Promise<void> {
  if (!payload.response_url) return;
  let url: URL;
  try {
    url = new URL(payload.response_url);
  } catch {
    return;
  }
  if (url.origin !== opts.origin) {
    opts.log.warn({ origin: url.origin }, 'Slack response_url is not on Slack; no follow-up sent');
    return;
  }
  const acted = answer.response_type === 'in_channel';
  const kept = (payload.message?.blocks ?? []).filter((b) => b.type !== 'actions');
  const message = acted
    ? {
        replace_original: true,
        text: answer.text,
        blocks: [
          ...kept,
          { type: 'context', elements: [{ type: 'mrkdwn', text: answer.text.slice(0, 3000) }] },
        ],
      }
    : { replace_original: false, response_type: 'ephemeral', text: answer.text };
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(message),
      redirect: 'error',
      signal: AbortSignal.timeout(opts.timeoutMs ?? 3_000),
    });
    await res.body?.cancel();
    if (!res.ok) opts.log.warn({ status: res.status }, 'Slack refused the follow-up message');
  } catch (e) {
    // The URL is a credential of sorts: only the error's name and message are logged.
    opts.log.warn({ error: (e as Error).name, message: (e as Error).message }, 'Slack follow-up failed');
  }
}

/** Carries out one button click (Approve / Abort on a gate notification) for a verified Slack user. */
export async function runBlockAction(
  ctx: DomainContext,
  opts: SlackDoorOptions,
  payload: BlockActions,
): Promise<SlackReply> {
  if (payload.type !== 'block_actions') {
    return reply(`:x: vane handles block_actions only, not ${escapeSlack(payload.type)}`);
  }
  const action = payload.actions[0]!;
  const target = parseGateAction(action.value);
  if (!target || (action.action_id !== SLACK_ACTIONS.approve && action.action_id !== SLACK_ACTIONS.abort)) {
    return reply(`:x: this button (${escapeSlack(action.action_id)}) is not one of vane's`);
  }
  const refused = operatorRefusal(payload.user.id, opts);
  if (refused) return refused;
  const by = slackActor(payload.user.id, payload.user.username ?? payload.user.name);
  if (action.action_id === SLACK_ACTIONS.approve) {
    const { rollout, gate } = await approveGate({ ctx, id: target.rollout, gate: target.gate, by });
    return {
      ...reply(
        `:white_check_mark: <@${payload.user.id}> approved ${escapeSlack(gate)}\n${rolloutLine(rollout)}`,
        'in_channel',
      ),
      replace_original: false,
    };
  }
  const r = await sendCommand({
    ctx,
    id: target.rollout,
    type: 'abort',
    by,
    reason: `aborted from Slack at ${target.gate}`,
  });
  return {
    ...reply(`:octagonal_sign: <@${payload.user.id}> aborted \`${r.id}\`\n${rolloutLine(r)}`, 'in_channel'),
    replace_original: false,
  };
}

/**
 * POST /api/v1/chatops/slack/interactive: Slack interactivity (a click on Approve / Abort in a
 * gate notification). Verified and acted on like the slash command, with the same operator check.
 */
export function registerSlackInteractive(app: App, ctx: DomainContext, opts: SlackDoorOptions): void {
  app.openAPIRegistry.registerPath({
    method: 'post',
    // Authenticated by the caller's signature over the body, not by a bearer token.
    security: [],
    path: '/api/v1/chatops/slack/interactive',
    summary: 'Slack interactivity: Approve / Abort buttons of gate notifications, signed by Slack',
    request: {
      body: {
        required: true,
        content: { 'application/x-www-form-urlencoded': { schema: z.object({ payload: z.string() }) } },
      },
    },
    responses: {
      200: {
        description: 'Slack response JSON; errors are ephemeral',
        content: {
          'application/json': { schema: z.object({ response_type: z.string(), text: z.string() }) },
        },
      },
      ...errorResponses('UNAUTHORIZED', 'NOT_FOUND'),
    },
  });
  app.post('/api/v1/chatops/slack/interactive', async (c) => {
    const raw = await verifiedSlackBody(c, opts);
    const field = new URLSearchParams(raw.toString('utf8')).get('payload');
    if (!field)
      return c.json(reply(':x: payload: missing (Slack sends the interaction as a form field payload)'), 200);
    let json: unknown;
    try {
      json = JSON.parse(field);
    } catch {
      return c.json(reply(':x: payload: not valid JSON'), 200);
    }
    const parsed = BlockActionsSchema.safeParse(json);
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      return c.json(reply(`:x: payload.${i.path.join('.')}: ${i.message}`), 200);
    }
    const answer = await withinBudget(c, () => runBlockAction(ctx, opts, parsed.data));
    // Sent after the answer, so Slack's 3 s are not spent on it.
    void followUp(parsed.data, answer, {
      origin: opts.responseUrlOrigin ?? 'https://hooks.slack.com',
      log: c.get('logger') ?? ctx.logger,
    });
    return c.json(answer, 200);
  });
}
