import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { CliError } from './errors.ts';

/** Largest spec or template file the CLI reads. */
export const MAX_FILE_BYTES = 1024 * 1024;
/** Most --set flags in one command. */
export const MAX_SETS = 200;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A file's text ('-' is stdin); missing, unreadable or too large is a CliError (exit 2). */
export function readInputFile(file: string): string {
  try {
    if (file !== '-' && statSync(file).size > MAX_FILE_BYTES)
      throw new CliError(`${file}: larger than ${MAX_FILE_BYTES} bytes`);
    const text = readFileSync(file === '-' ? 0 : file, 'utf8');
    if (text.length > MAX_FILE_BYTES) throw new CliError(`${file}: larger than ${MAX_FILE_BYTES} bytes`);
    return text;
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** A YAML (or JSON) file holding one mapping. */
export function readMappingFile(file: string): Obj {
  const text = readInputFile(file);
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new CliError(`${file} is not valid YAML or JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!isObj(doc)) throw new CliError(`${file}: expected a mapping (a rollout spec), not ${describe(doc)}`);
  return doc;
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'an empty document';
  return Array.isArray(v) ? 'a list' : `a ${typeof v}`;
}

/** `a.b\.c[0].d` → ['a', 'b.c', 0, 'd']; a backslash escapes a dot (label keys such as app\.kubernetes\.io/name). */
export function parsePath(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  let cur = '';
  let i = 0;
  const push = () => {
    if (cur === '') throw new CliError(`--set ${path}: empty segment in the path`);
    out.push(cur);
    cur = '';
  };
  while (i < path.length) {
    const c = path[i]!;
    if (c === '\\' && (path[i + 1] === '.' || path[i + 1] === '[' || path[i + 1] === '\\')) {
      cur += path[i + 1];
      i += 2;
    } else if (c === '.') {
      push();
      i++;
    } else if (c === '[') {
      const m = /^\[(\d+)\]/.exec(path.slice(i));
      if (!m) throw new CliError(`--set ${path}: expected [INDEX] with a number`);
      if (cur !== '') push();
      out.push(Number(m[1]));
      i += m[0].length;
      if (path[i] === '.') i++;
    } else {
      cur += c;
      i++;
    }
  }
  if (cur !== '') out.push(cur);
  if (!out.length) throw new CliError(`--set ${path}: empty path`);
  if (out.length > 32) throw new CliError(`--set ${path}: deeper than 32 levels`);
  return out;
}

/** One `--set path=value`: the value is read as YAML (10 → number, true → boolean, [10,50] → list); `asString` keeps it text. */
export function applySet(target: Obj, assignment: string, asString = false): void {
  const eq = assignment.indexOf('=');
  const flag = asString ? '--set-string' : '--set';
  if (eq <= 0)
    throw new CliError(`${flag} ${assignment}: expected PATH=VALUE, e.g. canary.labels.version=v2`);
  const path = parsePath(assignment.slice(0, eq));
  const raw = assignment.slice(eq + 1);
  let value: unknown = raw;
  if (!asString) {
    try {
      value = raw === '' ? '' : parseYaml(raw);
    } catch (e) {
      throw new CliError(
        `${flag} ${assignment}: the value is not valid YAML: ${(e as Error).message.split('\n')[0]}`,
      );
    }
  }
  let node: unknown = target;
  for (let i = 0; i < path.length; i++) {
    const key = path[i]!;
    const last = i === path.length - 1;
    const next = path[i + 1];
    if (typeof key === 'number') {
      if (!Array.isArray(node))
        throw new CliError(`${flag} ${assignment}: [${key}] indexes something that is not a list`);
      if (key > node.length)
        throw new CliError(
          `${flag} ${assignment}: index ${key} is past the end of the list (${node.length})`,
        );
      if (last) node[key] = value;
      else {
        if (node[key] === undefined || node[key] === null) node[key] = typeof next === 'number' ? [] : {};
        node = node[key];
      }
    } else {
      if (!isObj(node))
        throw new CliError(`${flag} ${assignment}: '${key}' is inside something that is not a mapping`);
      if (key === '__proto__' || key === 'constructor' || key === 'prototype')
        throw new CliError(`${flag} ${assignment}: '${key}' is not allowed`);
      if (last) node[key] = value;
      else {
        if (node[key] === undefined || node[key] === null) node[key] = typeof next === 'number' ? [] : {};
        node = node[key];
      }
    }
  }
}

/** Deep merge where `over` wins; lists and scalars are replaced. */
export function mergeOver(base: Obj, over: Obj): Obj {
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isObj(out[k]) && isObj(v) ? mergeOver(out[k] as Obj, v) : v;
  }
  return out;
}

/** `k=v,k2=v2` → { k: v, k2: v2 }. */
export function parseLabels(flag: string, s: string | undefined): Record<string, string> | undefined {
  if (s === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const pair of s.split(',')) {
    const m = /^\s*([^=\s]+)\s*=\s*([^=\s]*)\s*$/.exec(pair);
    if (!m) throw new CliError(`${flag}: '${pair}' is not KEY=VALUE (e.g. version=v2,track=canary)`);
    out[m[1]!] = m[2]!;
  }
  return out;
}

/** CI systems and the variables that name one attempt of one job. */
const CI_KEYS: { name: string; vars: string[]; optional?: string[] }[] = [
  { name: 'github', vars: ['GITHUB_RUN_ID', 'GITHUB_RUN_ATTEMPT'], optional: ['GITHUB_JOB'] },
  { name: 'gitlab', vars: ['CI_PIPELINE_ID', 'CI_JOB_ID'] },
  {
    name: 'buildkite',
    vars: ['BUILDKITE_BUILD_ID', 'BUILDKITE_JOB_ID'],
    optional: ['BUILDKITE_RETRY_COUNT'],
  },
  { name: 'circleci', vars: ['CIRCLE_WORKFLOW_ID', 'CIRCLE_BUILD_NUM'] },
  { name: 'azure', vars: ['BUILD_BUILDID', 'SYSTEM_JOBID'], optional: ['SYSTEM_JOBATTEMPT'] },
  { name: 'jenkins', vars: ['BUILD_TAG'] },
];

/**
 * The default idempotency key in CI: the CI system's run and job ids, plus a digest of the request,
 * so a retried request of one job gets the same rollout while two different rollouts of one job do not
 * collide. Undefined outside CI.
 */
export function ciIdempotencyKey(body: Obj, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const ci of CI_KEYS) {
    if (!ci.vars.every((v) => env[v])) continue;
    const parts = [...ci.vars, ...(ci.optional ?? [])].map((v) => env[v]).filter(Boolean) as string[];
    const digest = createHash('sha256').update(stableJson(body)).digest('hex').slice(0, 12);
    const key = `${ci.name}-${parts.join('-')}`.replace(/[^A-Za-z0-9._:-]/g, '_').slice(0, 180);
    return `${key}-${digest}`;
  }
  return undefined;
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (isObj(v))
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson(v[k])}`)
      .join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}
