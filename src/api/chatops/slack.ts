import { z } from '@hono/zod-openapi';
import { escapeSlack } from '../../notify/slack.ts';
import type { DomainContext } from '../../rollouts/context.ts';
import { approveGate, getRollout, listRollouts, sendCommand } from '../../rollouts/verbs.ts';
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
 * The fields vane reads of Slack's slash-command form. Slack sends more (team, channel, trigger
 * ids) and adds fields over time, so others are ignored here: Slack's signature, not the shape,
 * is what makes the request trustworthy.
 */
const SlashCommandSchema = z.object({
  command: z.string().max(100).default('/vane'),
  text: z.string().max(2000).default(''),
  user_id: z.string().regex(/^[UW][A-Z0-9]{1,30}$/, 'a Slack user id'),
  user_name: z.string().max(200).optional(),
});

const ID = /^ro-[a-f0-9]{1,40}$/;

export const HELP = [
  '*vane* — canary rollouts',
  '`/vane list` — active rollouts',
  '`/vane status <rollout id | service>` — phase, weights, last analysis',
  '`/vane promote <id>` — open the current gate or take the next step now',
  '`/vane approve <id> [gate]` — approve a gate (default: the one it waits at)',
  '`/vane abort <id> <reason>` — roll back to stable',
  '`/vane pause <id>` · `/vane resume <id>`',
  'Acting needs your Slack user id in VANE_SLACK_OPERATORS; reading does not.',
].join('\n');

type Words = string[];

function needId(words: Words, usage: string): string | SlackReply {
  const id = words[1];
  if (!id) return reply(`:x: missing rollout id: \`/vane ${usage}\``);
  if (!ID.test(id))
    return reply(
      `:x: '${escapeSlack(id)}' is not a rollout id (they look like ro-3f2a9c…): \`/vane ${usage}\``,
    );
  return id;
}

async function status(ctx: DomainContext, what: string | undefined): Promise<SlackReply> {
  if (!what) return reply(':x: missing rollout id or service: `/vane status <id | service>`');
  if (ID.test(what)) {
    const r = await getRollout({ ctx, id: what });
    const analysis = r.lastAnalysis
      ? `\nlast analysis: ${r.lastAnalysis.verdict}${r.lastAnalysis.results.map((m) => `\n• ${m.message}`).join('')}`
      : '';
    return reply(`${rolloutLine(r)}\n${escapeSlack(r.reason)}${escapeSlack(analysis)}`);
  }
  // A service: its newest rollout, by VirtualService name or namespace/name.
  const [ns, name] = what.includes('/') ? what.split('/', 2) : [undefined, what];
  const recent = await listRollouts({ ctx, query: { limit: 200, ...(ns ? { namespace: ns } : {}) } });
  const match = recent.find((r) => r.spec.target.virtualService === name);
  if (!match) return reply(`:x: no rollout of a service '${escapeSlack(what)}' among the latest 200`);
  return status(ctx, match.id);
}

/** Carries out one slash command for a verified Slack user. */
export async function runSlashCommand(
  ctx: DomainContext,
  opts: SlackDoorOptions,
  user: { id: string; name?: string | undefined },
  text: string,
): Promise<SlackReply> {
  const words = text.trim().split(/\s+/).filter(Boolean);
  const verb = (words[0] ?? 'help').toLowerCase();
  const by = slackActor(user.id, user.name);
  switch (verb) {
    case 'help':
      return reply(HELP);
    case 'list': {
      const active = await listRollouts({ ctx, query: { active: true, limit: 20 } });
      if (active.length === 0) return reply('No active rollouts.');
      return reply(`${active.length} active:\n${active.map(rolloutLine).join('\n')}`);
    }
    case 'status':
      return status(ctx, words[1]);
    case 'promote':
    case 'pause':
    case 'resume': {
      const id = needId(words, `${verb} <id>`);
      if (typeof id !== 'string') return id;
      const refused = operatorRefusal(user.id, opts);
      if (refused) return refused;
      const r = await sendCommand({ ctx, id, type: verb, by });
      return reply(
        `:white_check_mark: ${verb} of \`${id}\` accepted from <@${user.id}>\n${rolloutLine(r)}`,
        'in_channel',
      );
    }
    case 'approve': {
      const id = needId(words, 'approve <id> [gate]');
      if (typeof id !== 'string') return id;
      const refused = operatorRefusal(user.id, opts);
      if (refused) return refused;
      const { rollout, gate } = await approveGate({ ctx, id, by, ...(words[2] ? { gate: words[2] } : {}) });
      return reply(
        `:white_check_mark: <@${user.id}> approved ${escapeSlack(gate)} of \`${id}\`\n${rolloutLine(rollout)}`,
        'in_channel',
      );
    }
    case 'abort': {
      const id = needId(words, 'abort <id> <reason>');
      if (typeof id !== 'string') return id;
      const reason = words.slice(2).join(' ');
      if (!reason) return reply(`:x: abort needs a reason, for the history: \`/vane abort ${id} <reason>\``);
      const refused = operatorRefusal(user.id, opts);
      if (refused) return refused;
      const r = await sendCommand({ ctx, id, type: 'abort', by, reason: reason.slice(0, 1000) });
      return reply(
        `:octagonal_sign: <@${user.id}> aborted \`${id}\`: ${escapeSlack(reason)}\n${rolloutLine(r)}`,
        'in_channel',
      );
    }
    default:
      return reply(`:x: unknown command '${escapeSlack(verb)}'.\n${HELP}`);
  }
}

/**
 * POST /api/v1/chatops/slack: a Slack slash command. Verify Slack's signature over the raw bytes,
 * parse the form, call the verb the REST route calls, answer in Slack's format within 3 s.
 */
export function registerSlackCommands(app: App, ctx: DomainContext, opts: SlackDoorOptions): void {
  app.openAPIRegistry.registerPath({
    method: 'post',
    // Authenticated by the caller's signature over the body, not by a bearer token.
    security: [],
    path: '/api/v1/chatops/slack',
    summary:
      'Slack slash command (/vane list|status|promote|approve|abort|pause|resume|help), signed by Slack',
    request: {
      body: {
        required: true,
        content: { 'application/x-www-form-urlencoded': { schema: SlashCommandSchema } },
      },
    },
    responses: {
      200: {
        description: 'Slack response JSON (response_type, text, blocks); errors are ephemeral',
        content: {
          'application/json': { schema: z.object({ response_type: z.string(), text: z.string() }) },
        },
      },
      ...errorResponses('BAD_REQUEST', 'UNAUTHORIZED', 'NOT_FOUND'),
    },
  });
  app.post('/api/v1/chatops/slack', async (c) => {
    const raw = await verifiedSlackBody(c, opts);
    const form = Object.fromEntries(new URLSearchParams(raw.toString('utf8')));
    const parsed = SlashCommandSchema.safeParse(form);
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      return c.json(reply(`:x: ${i.path.join('.') || 'form'}: ${i.message}`), 200);
    }
    const { user_id, user_name, text } = parsed.data;
    const answer = await withinBudget(c, () =>
      runSlashCommand(ctx, opts, { id: user_id, name: user_name }, text),
    );
    return c.json(answer, 200);
  });
}
