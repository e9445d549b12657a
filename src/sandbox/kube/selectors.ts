// biome-ignore-all lint/suspicious/noExplicitAny: Kubernetes objects are arbitrary JSON whose shape is checked by schemas at run time, not by types.
import { badRequest } from './status.ts';

type Requirement =
  | { op: 'eq' | 'neq'; key: string; value: string }
  | { op: 'in' | 'notin'; key: string; values: string[] }
  | { op: 'exists' | 'notexists'; key: string };

export type Matcher = (obj: any) => boolean;

/** Splits on commas that are not inside parentheses: "a in (x,y),b" → ["a in (x,y)", "b"]. */
function splitTerms(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((t) => t.trim()).filter(Boolean);
}

function parseLabelTerm(term: string): Requirement {
  let m = /^([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(term);
  if (m) {
    const values = m[3]!
      .split(',')
      .map((v) => v.trim())
      .filter(Boolean);
    return { op: m[2] as 'in' | 'notin', key: m[1]!, values };
  }
  m = /^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/.exec(term);
  if (m) return { op: m[2] === '!=' ? 'neq' : 'eq', key: m[1]!, value: m[3]! };
  m = /^!\s*([^\s!=(),]+)$/.exec(term);
  if (m) return { op: 'notexists', key: m[1]! };
  m = /^([^\s!=(),]+)$/.exec(term);
  if (m) return { op: 'exists', key: m[1]! };
  throw badRequest(
    `unable to parse requirement "${term}" in labelSelector: use key=value, key!=value, key in (a,b), key notin (a,b), key or !key`,
  );
}

function matchesRequirement(labels: Record<string, string>, r: Requirement): boolean {
  const has = Object.hasOwn(labels, r.key);
  const v = labels[r.key];
  switch (r.op) {
    case 'eq':
      return has && v === r.value;
    case 'neq':
      return !has || v !== r.value;
    case 'in':
      return has && r.values.includes(v!);
    case 'notin':
      return !has || !r.values.includes(v!);
    case 'exists':
      return has;
    case 'notexists':
      return !has;
  }
}

export function labelSelector(s: string | null | undefined): Matcher {
  if (!s) return () => true;
  const reqs = splitTerms(s).map(parseLabelTerm);
  return (obj) => {
    const labels = obj?.metadata?.labels ?? {};
    return reqs.every((r) => matchesRequirement(labels, r));
  };
}

const FIELDS: Record<string, (obj: any) => string | undefined> = {
  'metadata.name': (o) => o.metadata?.name,
  'metadata.namespace': (o) => o.metadata?.namespace,
};

/** The fields an Event list also selects on, as `kubectl describe` asks for an object's events. */
const EVENT_FIELDS: Record<string, (obj: any) => string | undefined> = {
  'involvedObject.kind': (o) => o.involvedObject?.kind,
  'involvedObject.namespace': (o) => o.involvedObject?.namespace,
  'involvedObject.name': (o) => o.involvedObject?.name,
  'involvedObject.uid': (o) => o.involvedObject?.uid,
  'involvedObject.apiVersion': (o) => o.involvedObject?.apiVersion,
  'involvedObject.resourceVersion': (o) => o.involvedObject?.resourceVersion,
  'involvedObject.fieldPath': (o) => o.involvedObject?.fieldPath,
  reason: (o) => o.reason,
  type: (o) => o.type,
  source: (o) => o.source?.component,
};

/** Only the fields every resource supports (and an Event's own); other fields are refused as a real server does. */
export function fieldSelector(s: string | null | undefined, kind?: string): Matcher {
  if (!s) return () => true;
  const fields = kind === 'Event' ? { ...FIELDS, ...EVENT_FIELDS } : FIELDS;
  const reqs = splitTerms(s).map((term) => {
    const m = /^([^!=]+)(==|=|!=)(.*)$/.exec(term);
    if (!m) throw badRequest(`invalid field selector "${term}": use field=value or field!=value`);
    const field = m[1]!.trim();
    const get = fields[field];
    if (!get)
      throw badRequest(`field label not supported: ${field} (supported: ${Object.keys(fields).join(', ')})`);
    return { get, neq: m[2] === '!=', value: m[3]!.trim() };
  });
  return (obj) => reqs.every((r) => (r.get(obj) === r.value) !== r.neq);
}
