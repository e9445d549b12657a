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
});

/** Carries out one button click (Approve / Abort on a gate notification) for a verified Slack user. */
export async function runBlockAction(
  ctx: DomainContext,
  opts: SlackDoorOptions,
  payload: z.infer<typeof BlockActionsSchema>,
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
    return c.json(await withinBudget(c, () => runBlockAction(ctx, opts, parsed.data)), 200);
  });
}
