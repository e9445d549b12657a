// biome-ignore-all lint/suspicious/noExplicitAny: Kubernetes objects are arbitrary JSON whose shape is checked by schemas at run time, not by types.
import * as models from '@kubernetes/client-node';
import type { ResourceType } from './resources.ts';
import type { StatusCause } from './status.ts';

/**
 * The shape of built-in objects (Deployment, ConfigMap, ClusterRole ...), taken from the model
 * classes @kubernetes/client-node generates from Kubernetes' OpenAPI: which fields exist and which
 * are objects, lists or maps. Scalars are not told apart (a quantity may be a number or a string).
 * Used for `fieldValidation=Strict` (kubectl's default), so a misspelt field in a manifest is an
 * error here as on a real API server.
 */

interface Attribute {
  baseName: string;
  type: string;
}

type ModelClass = { getAttributeTypeMap(): Attribute[] };

const MAP = /^\{ \[key: string\]: (.+); \}$/;
const ARRAY = /^Array<(.+)>$/;
const SCALARS = new Set(['string', 'number', 'boolean', 'Date', 'IntOrString']);

function model(name: string): ModelClass | undefined {
  const m = (models as Record<string, unknown>)[name] as ModelClass | undefined;
  return typeof m?.getAttributeTypeMap === 'function' ? m : undefined;
}

/** The model class of a served built-in type (V1Deployment ...), or undefined when client-node has none. */
export function builtInModel(t: ResourceType): string | undefined {
  const name = `V1${t.kind}`;
  return t.builtIn && model(name) ? name : undefined;
}

const kindOf = (v: unknown) => (Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v);

/** Fields the type does not declare (as field paths) and values of the wrong structure (as causes). */
export function checkBuiltIn(t: ResourceType, obj: any): { unknown: string[]; causes: StatusCause[] } {
  const out = { unknown: [] as string[], causes: [] as StatusCause[] };
  const name = builtInModel(t);
  if (name) walk(name, obj, '', out, true);
  return out;
}

function walk(
  type: string,
  value: unknown,
  path: string,
  out: { unknown: string[]; causes: StatusCause[] },
  top = false,
): void {
  if (value === null || value === undefined || type === 'any' || type === 'object') return;
  const array = ARRAY.exec(type);
  const map = MAP.exec(type);
  const mismatch = (want: string): void => {
    out.causes.push({
      reason: 'FieldValueTypeInvalid',
      field: path,
      message: `Invalid value: "${kindOf(value)}": ${path} in body must be of type ${want}: "${kindOf(value)}"`,
    });
  };
  if (array) {
    if (!Array.isArray(value)) mismatch('array');
    else for (const [i, v] of value.entries()) walk(array[1]!, v, `${path}[${i}]`, out);
    return;
  }
  if (map) {
    if (kindOf(value) !== 'object') mismatch('object');
    else for (const [k, v] of Object.entries(value as object)) walk(map[1]!, v, `${path}[${k}]`, out);
    return;
  }
  if (SCALARS.has(type)) {
    if (typeof value === 'object') mismatch(type === 'number' ? 'integer' : type.toLowerCase());
    return;
  }
  const m = model(type);
  if (!m) return;
  if (kindOf(value) !== 'object') {
    mismatch('object');
    return;
  }
  const attrs = new Map(m.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value as object)) {
    const at = path ? `${path}.${k}` : k;
    const sub = attrs.get(k);
    if (sub === undefined) {
      // apiVersion and kind are declared on every top-level model; anything else is unknown.
      if (!(top && (k === 'apiVersion' || k === 'kind'))) out.unknown.push(at);
    } else walk(sub, v, at, out);
  }
}
