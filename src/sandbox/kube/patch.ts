// biome-ignore-all lint/suspicious/noExplicitAny: Kubernetes objects are arbitrary JSON whose shape is checked by schemas at run time, not by types.
import { KubeError } from './status.ts';

const isObject = (v: unknown): v is Record<string, any> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** RFC 7386: objects merge, null removes, everything else (lists included) replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const out: Record<string, any> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function unescapeToken(token: string): string {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/'))
    throw new KubeError(400, 'BadRequest', `JSON patch path "${path}" must start with "/"`);
  return path.slice(1).split('/').map(unescapeToken);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    return (
      ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]))
    );
  }
  return false;
}

export { deepEqual };

/** A JSON patch that does not apply is the client's mistake: 422, as the API server answers. */
function unapplicable(message: string): KubeError {
  return new KubeError(422, 'Invalid', message);
}

function parentOf(doc: any, tokens: string[], path: string): { parent: any; last: string } {
  let cur = doc;
  for (const t of tokens.slice(0, -1)) {
    cur = Array.isArray(cur) ? cur[Number(t)] : isObject(cur) ? cur[t] : undefined;
    if (cur === undefined) throw unapplicable(`JSON patch: path "${path}" does not exist: missing "${t}"`);
  }
  return { parent: cur, last: tokens[tokens.length - 1]! };
}

function getAt(doc: any, path: string): unknown {
  let cur = doc;
  for (const t of pointer(path)) {
    cur = Array.isArray(cur) ? cur[Number(t)] : isObject(cur) ? cur[t] : undefined;
    if (cur === undefined) throw unapplicable(`JSON patch: path "${path}" does not exist`);
  }
  return cur;
}

function arrayIndex(arr: unknown[], last: string, path: string, forInsert: boolean): number {
  if (last === '-' && forInsert) return arr.length;
  if (!/^(0|[1-9]\d*)$/.test(last))
    throw unapplicable(`JSON patch: "${last}" in "${path}" is not an array index`);
  const i = Number(last);
  if (i > arr.length || (!forInsert && i >= arr.length))
    throw unapplicable(`JSON patch: index ${i} in "${path}" is out of bounds (length ${arr.length})`);
  return i;
}

function removeAt(doc: any, path: string): unknown {
  const tokens = pointer(path);
  if (tokens.length === 0) throw unapplicable('JSON patch: cannot remove the whole document');
  const { parent, last } = parentOf(doc, tokens, path);
  if (Array.isArray(parent)) return parent.splice(arrayIndex(parent, last, path, false), 1)[0];
  if (!isObject(parent) || !Object.hasOwn(parent, last))
    throw unapplicable(`JSON patch: path "${path}" does not exist`);
  const v = parent[last];
  delete parent[last];
  return v;
}

function addAt(doc: any, path: string, value: unknown, replace: boolean): any {
  const tokens = pointer(path);
  if (tokens.length === 0) return value;
  const { parent, last } = parentOf(doc, tokens, path);
  if (Array.isArray(parent)) {
    const i = arrayIndex(parent, last, path, !replace);
    parent.splice(i, replace ? 1 : 0, value);
  } else if (isObject(parent)) {
    if (replace && !Object.hasOwn(parent, last))
      throw unapplicable(`JSON patch: path "${path}" does not exist`);
    parent[last] = value;
  } else throw unapplicable(`JSON patch: the parent of "${path}" is not an object or array`);
  return doc;
}

/** RFC 6902, including `test`, which makes the whole patch fail when its value differs. */
export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops))
    throw new KubeError(400, 'BadRequest', 'a JSON patch must be an array of operations');
  let doc: any = structuredClone(target);
  for (const [i, op] of ops.entries()) {
    if (!isObject(op) || typeof op.op !== 'string' || typeof op.path !== 'string')
      throw new KubeError(400, 'BadRequest', `JSON patch operation ${i} needs "op" and "path"`);
    switch (op.op) {
      case 'add':
        doc = addAt(doc, op.path, structuredClone(op.value), false);
        break;
      case 'replace':
        doc = addAt(doc, op.path, structuredClone(op.value), true);
        break;
      case 'remove':
        removeAt(doc, op.path);
        break;
      case 'move': {
        const v = removeAt(doc, String(op.from));
        doc = addAt(doc, op.path, v, false);
        break;
      }
      case 'copy':
        doc = addAt(doc, op.path, structuredClone(getAt(doc, String(op.from))), false);
        break;
      case 'test': {
        const actual = getAt(doc, op.path);
        if (!deepEqual(actual, op.value))
          throw unapplicable(
            `the server rejected our request due to an error in our request: testing value ${op.path} failed: expected ${JSON.stringify(op.value)}, found ${JSON.stringify(actual)}`,
          );
        break;
      }
      default:
        throw new KubeError(400, 'BadRequest', `JSON patch operation ${i}: unknown op "${op.op}"`);
    }
  }
  return doc;
}

/**
 * The patch merge keys of the core and apps fields kubectl patches; a list not named here is
 * replaced whole, as Kubernetes does for lists without a merge strategy.
 */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  env: 'name',
  imagePullSecrets: 'name',
  conditions: 'type',
  tolerations: 'key',
  ownerReferences: 'uid',
  hostAliases: 'ip',
  topologySpreadConstraints: 'topologyKey',
};
/** Ports merge by port in a Service and by containerPort in a container. */
function mergeKeyFor(field: string, items: any[]): string | undefined {
  if (field === 'ports')
    return items.some((p) => isObject(p) && 'containerPort' in p) ? 'containerPort' : 'port';
  return MERGE_KEYS[field];
}

/**
 * Strategic merge patch for core and apps objects: lists with a merge key merge item by item,
 * `$patch: delete|replace` directives and `$setElementOrder`/`$retainKeys` hints are honoured
 * enough for kubectl apply and kubectl patch.
 */
export function strategicMergePatch(target: unknown, patch: unknown, field = ''): unknown {
  if (!isObject(patch)) {
    if (Array.isArray(patch) && Array.isArray(target)) return mergeList(target, patch, field);
    return structuredClone(patch);
  }
  if (patch.$patch === 'replace') {
    const { $patch: _, ...rest } = patch;
    return structuredClone(rest);
  }
  if (patch.$patch === 'delete') return undefined;
  const out: Record<string, any> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$setElementOrder/') || k === '$retainKeys' || k === '$patch') continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const f = k.slice('$deleteFromPrimitiveList/'.length);
      if (Array.isArray(out[f]) && Array.isArray(v)) out[f] = out[f].filter((x: unknown) => !v.includes(x));
      continue;
    }
    if (v === null) delete out[k];
    else {
      const merged = strategicMergePatch(out[k], v, k);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    }
  }
  return out;
}

function mergeList(target: any[], patch: any[], field: string): any[] {
  const key = mergeKeyFor(field, [...target, ...patch]);
  if (!key) return structuredClone(patch);
  const out = target.map((x) => x);
  for (const item of patch) {
    if (!isObject(item)) continue;
    if (item.$patch === 'replace')
      return patch.filter((p) => !(isObject(p) && p.$patch)).map((p) => structuredClone(p));
    const idx = out.findIndex((x) => isObject(x) && x[key] === item[key]);
    if (item.$patch === 'delete') {
      if (idx >= 0) out.splice(idx, 1);
    } else if (idx >= 0) out[idx] = strategicMergePatch(out[idx], item, '');
    else out.push(strategicMergePatch(undefined, item, ''));
  }
  return out;
}
