import type { z } from 'zod';
import type { Rollout, RolloutEvent } from '../rollouts/model.ts';
import type { NotificationSchema } from '../rollouts/spec.ts';

export type Notification = z.output<typeof NotificationSchema>;
export type Severity = Notification['severity'];

const RANK: Record<Severity, number> = { info: 0, warn: 1, error: 2 };

/**
 * How much an event matters to a human: a rollback, a failed rollout or a failing analysis that ends
 * it is an error; an abort by an operator, drift, tick errors, a failed or inconclusive analysis and
 * a pause are warnings; progress and success are info.
 */
export function severityOf(event: RolloutEvent): Severity {
  switch (event.type) {
    case 'transition':
      switch (event.to) {
        case 'failed':
          return 'error';
        case 'rolling-back':
          // An operator's abort is deliberate; anything else rolling back is a failed release.
          return event.reason.startsWith('abort') ? 'warn' : 'error';
        case 'aborted':
        case 'paused':
          return 'warn';
        default:
          return 'info';
      }
    case 'drift':
    case 'error':
      return 'warn';
    case 'analysis':
      return event.verdict === 'fail' ? 'warn' : 'info';
    case 'gate':
      return /closed|refused|denied/i.test(event.reason) ? 'warn' : 'info';
    default:
      return 'info';
  }
}

/**
 * Whether a notification entry wants this event: its severity is at least the entry's `severity`,
 * and, when the entry lists `events`, the event's type (e.g. `weight`, `drift`) or, for a
 * transition, the phase it enters (e.g. `failed`, `succeeded`) is listed. Notification events
 * themselves are never notified (no loops).
 */
export function shouldNotify(
  notification: Pick<Notification, 'severity'> & { events?: string[] | undefined },
  event: RolloutEvent,
): boolean {
  if (event.type === 'notification') return false;
  if (RANK[severityOf(event)] < RANK[notification.severity ?? 'info']) return false;
  const wanted = notification.events;
  if (!wanted || wanted.length === 0) return true;
  return (
    wanted.includes(event.type) || (event.type === 'transition' && !!event.to && wanted.includes(event.to))
  );
}

/** "bookinfo/reviews v2": the target and the canary's version (its `version` label, else its subset). */
export function rolloutTitle(r: Rollout): string {
  const t = r.spec.target;
  return `${t.namespace}/${t.virtualService} ${r.spec.canary.labels.version ?? r.spec.canary.subset}`;
}

/** The failing checks that count; dry-run ones never explain a failure. */
function failingMessages(r: Rollout, e: RolloutEvent): { messages: string[]; total: number } {
  const results = (e.results ?? r.lastAnalysis?.results ?? []).filter((m) => !m.dryRun);
  return {
    messages: results.filter((m) => m.verdict === 'fail').map((m) => m.message),
    total: results.length,
  };
}

/** A check's sentence, marked when it is a dry run (judged and shown, never counted). */
export function checkLine(m: { message: string; dryRun?: boolean }): string {
  return m.dryRun ? `${m.message} (dry run)` : m.message;
}

/** "; dry run: p99 latency 812ms > 500ms (dry run)" for the dry-run checks that did not pass. */
function dryRunNote(e: RolloutEvent): string {
  const dry = (e.results ?? []).filter((m) => m.dryRun && m.verdict !== 'pass');
  return dry.length ? `; dry run, not counted: ${dry.map((m) => m.message).join('; ')}` : '';
}

/** The engine's reasons repeat the failing values after a colon; keep only the part before them. */
function bareReason(reason: string): string {
  return reason.split(': ')[0] ?? reason;
}

/**
 * Why it failed: the failing metrics with their values, then how many analyses failed — when
 * analysis is the cause (the event carries results, or its reason names an analysis or a check);
 * otherwise the event's own reason (drift, an error, a deadline).
 */
function why(r: Rollout, e: RolloutEvent): string {
  const reason = e.reason || r.reason;
  const byAnalysis = e.results !== undefined || /analys|check/i.test(reason);
  const { messages } = byAnalysis ? failingMessages(r, e) : { messages: [] };
  if (messages.length === 0) return reason;
  const failures = r.progress.failures;
  const threshold = r.spec.analysis.failureThreshold;
  const count =
    failures > 0
      ? `${failures} of ${threshold} ${threshold === 1 ? 'analysis' : 'analyses'} failed`
      : bareReason(reason);
  return `${messages.join('; ')}, ${count}`;
}

/** "aborted by alice: bad build" → "by alice: bad build" (the verb is already in the sentence). */
function afterAborted(reason: string): string {
  const rest = reason.replace(/^aborted\b\s*/, '');
  return rest ? (rest.startsWith(':') ? rest : ` ${rest}`) : '';
}

/** The canary's share when things went wrong: the last stage's weight, which outlives the rollback. */
function atWeight(r: Rollout, e: RolloutEvent): string {
  const w = Math.max(e.weights?.canary ?? 0, r.traffic.canaryWeight);
  return w > 0 ? `at ${w}%` : 'before any traffic shift';
}

/**
 * One sentence that says what happened and why, e.g.
 * "bookinfo/reviews v2 rolled back at 25%: success-rate 91.2% < 99% (stable 99.9%), 2 of 2 analyses failed".
 */
export function summarize(r: Rollout, e: RolloutEvent): string {
  const who = rolloutTitle(r);
  const by = e.by ? ` by ${e.by}` : '';
  switch (e.type) {
    case 'created':
      return `${who}: ${e.reason}`;
    case 'weight':
      return `${who} ${e.weights ? `now at ${e.weights.canary}% canary` : 'traffic changed'}: ${e.reason}`;
    case 'analysis': {
      if (e.verdict === 'fail') {
        const { messages, total } = failingMessages(r, e);
        return `${who} analysis failed at ${r.weights.canary}%: ${messages.join('; ') || e.reason} (${messages.length} of ${total} checks failed)${dryRunNote(e)}`;
      }
      return `${who} ${e.reason}${dryRunNote(e)}`;
    }
    case 'subset':
      return `${who}: ${e.reason}`;
    case 'drift':
      return `${who} drift detected: ${e.reason}`;
    case 'error':
      return `${who} error: ${e.reason}`;
    case 'command':
      return `${who} command ${e.reason}`;
    case 'gate':
      return `${who} gate: ${e.reason}${by}`;
    case 'notification':
      return `${who} ${e.reason}`;
    case 'scale':
      return `${who}: ${e.reason}`;
    case 'undo':
      return `${who} undone${by}: ${e.reason}`;
    case 'transition':
      switch (e.to) {
        case 'succeeded':
          return `${who} promoted: ${e.reason}`;
        case 'failed':
          return `${who} rolled back ${atWeight(r, e)}: ${why(r, e)}`;
        case 'aborted':
          return `${who} aborted ${atWeight(r, e)}${afterAborted(e.reason)}`;
        case 'rolling-back':
          if (e.reason.startsWith('aborted'))
            return `${who} rolling back ${atWeight(r, e)}, aborted${afterAborted(e.reason)}`;
          return `${who} rolling back ${atWeight(r, e)}: ${why(r, e)}`;
        case 'paused':
          return `${who} paused at ${r.weights.canary}%${by}: ${e.reason}`;
        case 'awaiting-promotion':
          return `${who} at ${r.weights.canary}%, awaiting promotion: ${e.reason}`;
        case 'promoting':
          return `${who} promoting: ${e.reason}`;
        default:
          return `${who} ${e.from ?? '?'} → ${e.to ?? '?'}${by}: ${e.reason}`;
      }
  }
}

// ---- Slack incoming webhooks ----

/** A Slack text object (mrkdwn or plain_text). */
export interface SlackText {
  type: 'mrkdwn' | 'plain_text';
  text: string;
}
/** A Block Kit button; `confirm` asks before a click acts. */
export interface SlackButton {
  type: 'button';
  text: { type: 'plain_text'; text: string };
  action_id: string;
  value: string;
  style?: 'primary' | 'danger';
  confirm?: {
    title: { type: 'plain_text'; text: string };
    text: SlackText;
    confirm: { type: 'plain_text'; text: string };
    deny: { type: 'plain_text'; text: string };
  };
}
export type SlackBlock =
  | { type: 'section'; text?: SlackText; fields?: SlackText[]; block_id?: string }
  | { type: 'context'; elements: SlackText[]; block_id?: string }
  | { type: 'actions'; elements: SlackButton[]; block_id?: string };

/** The action ids of the buttons on a gate notification; POST /api/v1/chatops/slack/interactive acts on them. */
export const SLACK_ACTIONS = { approve: 'vane-approve', abort: 'vane-abort' } as const;

/** A button's value: the rollout and the gate it was offered for, so a click acts on exactly that. */
export function gateActionValue(rollout: string, gate: string): string {
  return JSON.stringify({ rollout, gate });
}

/** The rollout and gate a button names, or undefined for a value vane did not write. */
export function parseGateAction(value: string | undefined): { rollout: string; gate: string } | undefined {
  if (!value || value.length > 2000) return undefined;
  try {
    const v = JSON.parse(value) as unknown;
    if (typeof v !== 'object' || v === null) return undefined;
    const { rollout, gate } = v as Record<string, unknown>;
    if (typeof rollout !== 'string' || !/^ro-[a-f0-9]{1,40}$/.test(rollout)) return undefined;
    if (typeof gate !== 'string' || gate.length === 0 || gate.length > 100) return undefined;
    return { rollout, gate };
  } catch {
    return undefined;
  }
}

/** The gate an event says the rollout now waits at (approvable from Slack), if any. */
function waitingGate(r: Rollout, e: RolloutEvent): string | undefined {
  if (e.type !== 'gate') return undefined;
  const m = /^waiting at (\S+?):/.exec(e.reason);
  const key = m?.[1] ?? r.gate?.key;
  // pre-rollout is a webhook's decision alone; it cannot be approved by hand.
  return key && key !== 'pre-rollout' ? key : undefined;
}

/** Approve / Abort buttons for a rollout held at `gate`. */
export function gateButtons(r: Rollout, gate: string): SlackBlock {
  const value = gateActionValue(r.id, gate);
  return {
    type: 'actions',
    block_id: `vane-gate-${r.id}`.slice(0, 255),
    elements: [
      {
        type: 'button',
        text: { type: 'plain_text', text: 'Approve' },
        action_id: SLACK_ACTIONS.approve,
        value,
        style: 'primary',
      },
      {
        type: 'button',
        text: { type: 'plain_text', text: 'Abort' },
        action_id: SLACK_ACTIONS.abort,
        value,
        style: 'danger',
        confirm: {
          title: { type: 'plain_text', text: 'Abort this rollout?' },
          text: {
            type: 'mrkdwn',
            text: truncate(`Roll ${escapeSlack(rolloutTitle(r))} back to stable.`, 300),
          },
          confirm: { type: 'plain_text', text: 'Abort' },
          deny: { type: 'plain_text', text: 'Cancel' },
        },
      },
    ],
  };
}

/** The body of a Slack incoming webhook: `text` is the fallback shown in notifications and required. */
export interface SlackMessage {
  text: string;
  blocks?: SlackBlock[];
}

/** Slack treats &, < and > as control characters in text; everything a user wrote is escaped. */
export function escapeSlack(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

function truncate(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

const ICON: Record<Severity, string> = {
  info: ':large_blue_circle:',
  warn: ':warning:',
  error: ':red_circle:',
};

/** A Slack message for an event: the summary as fallback text, a section with the details, a context line. */
export function slackMessage(r: Rollout, e: RolloutEvent, severity: Severity = severityOf(e)): SlackMessage {
  const summary = summarize(r, e);
  const fields: SlackText[] = [
    { type: 'mrkdwn', text: `*Phase*\n${escapeSlack(r.phase)}` },
    { type: 'mrkdwn', text: `*Weights*\nstable ${r.weights.stable}% / canary ${r.weights.canary}%` },
  ];
  const failing = (e.results ?? r.lastAnalysis?.results ?? []).filter((m) => m.verdict !== 'pass');
  if (failing.length > 0) {
    fields.push({
      type: 'mrkdwn',
      text: truncate(`*Checks*\n${failing.map((m) => `• ${escapeSlack(checkLine(m))}`).join('\n')}`, 2000),
    });
  }
  const md = r.spec.metadata;
  const context: string[] = [`rollout \`${escapeSlack(r.id)}\``];
  if (md.commit) context.push(`commit \`${escapeSlack(md.commit)}\``);
  if (md.triggeredBy) context.push(`by ${escapeSlack(md.triggeredBy)}`);
  if (md.pipelineUrl && /^https?:\/\//.test(md.pipelineUrl)) {
    // Inside <url|label> only | and > would break the link; the URL is percent-encoded for them.
    const link = md.pipelineUrl.replaceAll('|', '%7C').replaceAll('>', '%3E');
    context.push(`<${link}|pipeline>`);
  }
  const gate = waitingGate(r, e);
  return {
    text: truncate(summary, 3000),
    blocks: [
      {
        type: 'section',
        text: { type: 'mrkdwn', text: truncate(`${ICON[severity]} ${escapeSlack(summary)}`, 3000) },
      },
      { type: 'section', fields: fields.slice(0, 10) },
      { type: 'context', elements: [{ type: 'mrkdwn', text: truncate(context.join(' · '), 3000) }] },
      ...(gate ? [gateButtons(r, gate)] : []),
    ],
  };
}

/**
 * Problems with a message against Slack's incoming-webhook format (an empty list = valid): `text` a
 * non-empty string; at most 50 blocks; section text and context elements are text objects of type
 * mrkdwn or plain_text; a section has text or fields (at most 10, each at most 2000 characters),
 * its text at most 3000; a context has 1..10 elements; block_id at most 255 characters.
 */
export function validateSlackMessage(msg: unknown): string[] {
  const problems: string[] = [];
  if (typeof msg !== 'object' || msg === null) return ['message must be a JSON object'];
  const m = msg as Record<string, unknown>;
  if (typeof m.text !== 'string' || m.text.trim() === '')
    problems.push('text: required (the fallback shown in notifications), a non-empty string');
  const textObject = (t: unknown, where: string, max: number): void => {
    if (typeof t !== 'object' || t === null) {
      problems.push(`${where}: must be a text object`);
      return;
    }
    const o = t as Record<string, unknown>;
    if (o.type !== 'mrkdwn' && o.type !== 'plain_text')
      problems.push(`${where}.type: must be mrkdwn or plain_text, not ${JSON.stringify(o.type)}`);
    if (typeof o.text !== 'string' || o.text.length === 0) problems.push(`${where}.text: a non-empty string`);
    else if (o.text.length > max)
      problems.push(`${where}.text: at most ${max} characters (${o.text.length})`);
    const extra = Object.keys(o).filter((k) => !['type', 'text', 'emoji', 'verbatim'].includes(k));
    if (extra.length) problems.push(`${where}: unknown fields ${extra.join(', ')}`);
  };
  const plain = (t: unknown, where: string, max: number): void => {
    textObject(t, where, max);
    if ((t as { type?: unknown } | null)?.type !== 'plain_text')
      problems.push(`${where}.type: must be plain_text`);
  };
  const button = (b: unknown, where: string): void => {
    if (typeof b !== 'object' || b === null) {
      problems.push(`${where}: must be an object`);
      return;
    }
    const o = b as Record<string, unknown>;
    if (o.type !== 'button')
      problems.push(`${where}.type: vane sends buttons only, not ${JSON.stringify(o.type)}`);
    plain(o.text, `${where}.text`, 75);
    if (typeof o.action_id !== 'string' || o.action_id.length === 0 || o.action_id.length > 255)
      problems.push(`${where}.action_id: 1 to 255 characters`);
    if (o.value !== undefined && (typeof o.value !== 'string' || o.value.length > 2000))
      problems.push(`${where}.value: a string of at most 2000 characters`);
    if (o.style !== undefined && o.style !== 'primary' && o.style !== 'danger')
      problems.push(`${where}.style: primary or danger`);
    if (o.confirm !== undefined) {
      const cf = o.confirm as Record<string, unknown>;
      plain(cf.title, `${where}.confirm.title`, 100);
      textObject(cf.text, `${where}.confirm.text`, 300);
      plain(cf.confirm, `${where}.confirm.confirm`, 30);
      plain(cf.deny, `${where}.confirm.deny`, 30);
    }
    const extra = Object.keys(o).filter(
      (k) => !['type', 'text', 'action_id', 'value', 'style', 'confirm'].includes(k),
    );
    if (extra.length) problems.push(`${where}: unknown fields ${extra.join(', ')}`);
  };
  if (m.blocks === undefined) return problems;
  if (!Array.isArray(m.blocks)) return [...problems, 'blocks: must be an array'];
  if (m.blocks.length > 50) problems.push(`blocks: at most 50 (${m.blocks.length})`);
  for (const [i, b] of (m.blocks as unknown[]).entries()) {
    const where = `blocks[${i}]`;
    if (typeof b !== 'object' || b === null) {
      problems.push(`${where}: must be an object`);
      continue;
    }
    const o = b as Record<string, unknown>;
    if (typeof o.block_id === 'string' && o.block_id.length > 255)
      problems.push(`${where}.block_id: at most 255 characters`);
    if (o.type === 'section') {
      if (o.text === undefined && o.fields === undefined) problems.push(`${where}: needs text or fields`);
      if (o.text !== undefined) textObject(o.text, `${where}.text`, 3000);
      if (o.fields !== undefined) {
        if (!Array.isArray(o.fields) || o.fields.length === 0 || o.fields.length > 10)
          problems.push(`${where}.fields: 1 to 10 text objects`);
        else
          for (const [k, f] of (o.fields as unknown[]).entries())
            textObject(f, `${where}.fields[${k}]`, 2000);
      }
    } else if (o.type === 'context') {
      if (!Array.isArray(o.elements) || o.elements.length === 0 || o.elements.length > 10)
        problems.push(`${where}.elements: 1 to 10 elements`);
      else
        for (const [k, el] of (o.elements as unknown[]).entries())
          textObject(el, `${where}.elements[${k}]`, 3000);
    } else if (o.type === 'actions') {
      if (!Array.isArray(o.elements) || o.elements.length === 0 || o.elements.length > 25)
        problems.push(`${where}.elements: 1 to 25 elements`);
      else for (const [k, el] of (o.elements as unknown[]).entries()) button(el, `${where}.elements[${k}]`);
    } else {
      problems.push(
        `${where}.type: vane sends section, context or actions blocks, not ${JSON.stringify(o.type)}`,
      );
    }
  }
  return problems;
}
