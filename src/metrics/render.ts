import { promDuration } from './duration.ts';
import { MetricError } from './errors.ts';
import type { AnalysisContext, SubsetRef } from './types.ts';

/**
 * Variables of custom PromQL: `{{ namespace }}`, `{{ host }}`, `{{ service }}`, `{{ interval }}`,
 * `{{ stable.subset }}`, `{{ stable.labels.KEY }}`, the same for `canary` and for `subject` (the subset
 * being measured: the canary, or the stable on the stable side of a comparison), and `{{ vars.NAME }}`.
 * Each value is escaped for the quotes it stands in, so a label value cannot end its string early.
 */

type Quote = '"' | "'" | '`' | null;

export interface Placeholder {
  /** e.g. canary.labels.version */
  name: string;
  /** The quotes the placeholder stands in, or null outside a string. */
  quote: Quote;
}

export type QueryPart = string | Placeholder;

export interface CompiledQuery {
  source: string;
  parts: QueryPart[];
  /** True when the query refers to {{ subject.* }}, so it can be run for either subset. */
  usesSubject: boolean;
}

/** What is known when a spec is checked; unknown label keys are only checked when their list is given. */
export interface KnownVariables {
  /** Names of user variables (`vars.NAME`). */
  vars?: readonly string[];
  /** Pod label keys of the stable subset, when known (often only at run time). */
  stableLabels?: readonly string[];
  /** Pod label keys of the canary subset. */
  canaryLabels?: readonly string[];
}

const SCALARS = ['namespace', 'host', 'service', 'interval'];
const SIDES = ['stable', 'canary', 'subject'] as const;
const NAME = /^[A-Za-z_][\w]*(?:\.[\w.\-/]+)?$/;

function knownList(k: KnownVariables): string[] {
  const out = [...SCALARS];
  for (const side of SIDES) {
    out.push(`${side}.subset`);
    const keys =
      side === 'stable'
        ? k.stableLabels
        : side === 'canary'
          ? k.canaryLabels
          : k.stableLabels && k.canaryLabels
            ? k.canaryLabels.filter((l) => k.stableLabels!.includes(l))
            : undefined;
    if (keys) out.push(...keys.map((l) => `${side}.labels.${l}`));
    else out.push(`${side}.labels.KEY`);
  }
  if (k.vars?.length) out.push(...k.vars.map((v) => `vars.${v}`));
  return out;
}

function checkName(name: string, k: KnownVariables): boolean {
  if (SCALARS.includes(name)) return true;
  for (const side of SIDES) {
    if (name === `${side}.subset`) return true;
    const prefix = `${side}.labels.`;
    if (name.startsWith(prefix) && name.length > prefix.length) {
      const key = name.slice(prefix.length);
      if (side === 'stable') return !k.stableLabels || k.stableLabels.includes(key);
      if (side === 'canary') return !k.canaryLabels || k.canaryLabels.includes(key);
      return (
        (!k.stableLabels || k.stableLabels.includes(key)) && (!k.canaryLabels || k.canaryLabels.includes(key))
      );
    }
  }
  if (name.startsWith('vars.')) return (k.vars ?? []).includes(name.slice(5));
  return false;
}

/**
 * Splits a query into text and placeholders and checks every variable name. Returns the problems as
 * sentences (the caller prefixes the field path).
 */
export function compileQuery(
  source: string,
  known: KnownVariables = {},
): { query: CompiledQuery; errors: string[] } {
  const parts: QueryPart[] = [];
  const errors: string[] = [];
  let quote: Quote = null;
  let text = '';
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    if (c === '{' && source[i + 1] === '{') {
      const end = source.indexOf('}}', i + 2);
      if (end < 0) {
        errors.push(`unclosed {{ at character ${i + 1}`);
        text += source.slice(i);
        break;
      }
      const name = source.slice(i + 2, end).trim();
      if (!NAME.test(name)) {
        errors.push(`{{ ${name} }} is not a variable name (write e.g. {{ canary.labels.version }})`);
      } else if (!checkName(name, known)) {
        errors.push(`unknown variable {{ ${name} }}; known: ${knownList(known).join(', ')}`);
      }
      if (text) parts.push(text);
      text = '';
      parts.push({ name, quote });
      i = end + 2;
      continue;
    }
    text += c;
    if (quote === null) {
      if (c === '"' || c === "'" || c === '`') quote = c;
    } else if (c === '\\' && quote !== '`') {
      // An escaped character never closes the string.
      text += source[i + 1] ?? '';
      i++;
    } else if (c === quote) quote = null;
    i++;
  }
  if (text) parts.push(text);
  const usesSubject = parts.some((p) => typeof p !== 'string' && p.name.startsWith('subject.'));
  return { query: { source, parts, usesSubject }, errors };
}

/** Escapes a value for a PromQL string delimited by `quote`; a raw (backtick) string cannot escape, so it refuses. */
export function escapePromString(value: string, quote: '"' | "'" | '`'): string {
  if (quote === '`') {
    if (value.includes('`')) throw new Error('a value with a backtick cannot stand in a `raw` PromQL string');
    return value;
  }
  let out = '';
  for (const ch of value) {
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else out += ch;
  }
  return out;
}

/** Outside quotes only plain names and durations may stand, or the value would become PromQL. */
const BARE_VALUE = /^[A-Za-z0-9_:.-]+$/;

function variableValue(
  name: string,
  ctx: AnalysisContext,
  subject: SubsetRef,
  windowSeconds: number,
): string | undefined {
  switch (name) {
    case 'namespace':
      return ctx.namespace;
    case 'host':
      return ctx.host;
    case 'service':
      return ctx.service;
    case 'interval':
      return promDuration(windowSeconds);
  }
  if (name.startsWith('vars.')) return ctx.vars?.[name.slice(5)];
  const dot = name.indexOf('.');
  const side = name.slice(0, dot);
  const ref = side === 'stable' ? ctx.stable : side === 'canary' ? ctx.canary : subject;
  const rest = name.slice(dot + 1);
  if (rest === 'subset') return ref.subset;
  if (rest.startsWith('labels.')) return ref.labels[rest.slice(7)];
  return undefined;
}

/**
 * The PromQL to run. `subject` says which subset `{{ subject.* }}` means; `windowSeconds` is what
 * `{{ interval }}` becomes. Throws MetricError('config') for a variable without a value.
 */
export function renderQuery(
  q: CompiledQuery,
  ctx: AnalysisContext,
  subject: 'canary' | 'stable',
  windowSeconds: number = ctx.intervalSeconds,
): string {
  const ref = subject === 'canary' ? ctx.canary : ctx.stable;
  let out = '';
  for (const p of q.parts) {
    if (typeof p === 'string') {
      out += p;
      continue;
    }
    const v = variableValue(p.name, ctx, ref, windowSeconds);
    if (v === undefined) {
      throw new MetricError(
        'config',
        `variable {{ ${p.name} }} has no value for this rollout (query: ${q.source})`,
      );
    }
    if (p.quote === null) {
      if (!BARE_VALUE.test(v)) {
        throw new MetricError(
          'config',
          `{{ ${p.name} }} stands outside quotes but its value ${JSON.stringify(v)} is not a plain name; put it inside "..." (query: ${q.source})`,
        );
      }
      out += v;
    } else {
      try {
        out += escapePromString(v, p.quote);
      } catch (e) {
        throw new MetricError('config', `{{ ${p.name} }}: ${(e as Error).message} (query: ${q.source})`);
      }
    }
  }
  return out;
}
