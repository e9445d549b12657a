// biome-ignore-all lint/suspicious/noExplicitAny: Kubernetes objects are arbitrary JSON whose shape is checked by schemas at run time, not by types.
import {
  type CelEnv,
  type CelFunc,
  CelScalar,
  celEnv,
  celFunc,
  celMethod,
  isCelError,
  parse,
  plan,
} from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
import type { StatusCause } from './status.ts';

/**
 * The Kubernetes CEL library functions Istio's CRDs use that @bufbuild/cel lacks. A URL is
 * carried as its string form, since the only things the rules do with one are read its parts.
 */
function parseUrl(s: string): URL {
  const u = URL.parse(s);
  if (!u) throw new Error(`URL parse error during conversion from string: ${s}`);
  return u;
}
const KUBERNETES_FUNCS: CelFunc[] = [
  celFunc('url', [CelScalar.STRING], CelScalar.STRING, (s) => parseUrl(s).href),
  celFunc('isURL', [CelScalar.STRING], CelScalar.BOOL, (s) => URL.canParse(s)),
  celMethod('getScheme', CelScalar.STRING, [], CelScalar.STRING, function () {
    return parseUrl(this).protocol.replace(/:$/, '');
  }),
  celMethod('getHost', CelScalar.STRING, [], CelScalar.STRING, function () {
    return parseUrl(this).host;
  }),
  celMethod('getHostname', CelScalar.STRING, [], CelScalar.STRING, function () {
    return parseUrl(this).hostname;
  }),
  celMethod('getPort', CelScalar.STRING, [], CelScalar.STRING, function () {
    return parseUrl(this).port;
  }),
  celMethod('getEscapedPath', CelScalar.STRING, [], CelScalar.STRING, function () {
    return parseUrl(this).pathname;
  }),
];

let sharedEnv: CelEnv | undefined;
function env(): CelEnv {
  sharedEnv ??= celEnv({ funcs: [...strings, ...KUBERNETES_FUNCS] });
  return sharedEnv;
}

export interface CelRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  fieldPath?: string;
  reason?: string;
}

interface CompiledRule extends CelRule {
  program: (ctx: Record<string, unknown>) => unknown;
  transition: boolean;
}

/** Names of the functions an expression calls, macros expanded. */
function calledFunctions(expr: any, out: Set<string>): Set<string> {
  if (!expr || typeof expr !== 'object') return out;
  const kind = expr.exprKind;
  if (kind?.case === 'callExpr') {
    out.add(kind.value.function);
    calledFunctions(kind.value.target, out);
    for (const a of kind.value.args) calledFunctions(a, out);
  } else if (kind?.case === 'selectExpr') calledFunctions(kind.value.operand, out);
  else if (kind?.case === 'listExpr') for (const e of kind.value.elements) calledFunctions(e, out);
  else if (kind?.case === 'structExpr')
    for (const e of kind.value.entries) {
      calledFunctions(e.keyKind?.case === 'mapKey' ? e.keyKind.value : undefined, out);
      calledFunctions(e.value, out);
    }
  else if (kind?.case === 'comprehensionExpr') {
    const c = kind.value;
    for (const e of [c.iterRange, c.accuInit, c.loopCondition, c.loopStep, c.result]) calledFunctions(e, out);
  }
  return out;
}

/** Operators and macros are built into the evaluator, not looked up by name. */
function isOperator(name: string): boolean {
  return /^[_@!]/.test(name) || name === 'size' || name === 'has';
}

/**
 * The CEL rules of a CRD schema, compiled once. Rules that cannot be compiled (syntax the parser
 * refuses, or a function no library here provides) are collected so they are reported, never
 * skipped silently.
 */
export class CelRules {
  private readonly compiled = new WeakMap<object, CompiledRule[]>();
  readonly unevaluated: string[] = [];

  /** Compiles every x-kubernetes-validations rule under `schema`; `where` names the CRD version in reports. */
  compileSchema(schema: any, where: string, path = ''): void {
    if (!schema || typeof schema !== 'object') return;
    const rules: CelRule[] = schema['x-kubernetes-validations'] ?? [];
    const ok: CompiledRule[] = [];
    for (const r of rules) {
      const c = this.compile(r, `${where} ${path || '<root>'}`);
      if (c) ok.push(c);
    }
    if (ok.length) this.compiled.set(schema, ok);
    for (const [k, sub] of Object.entries<any>(schema.properties ?? {}))
      this.compileSchema(sub, where, `${path}.${k}`);
    if (schema.items) this.compileSchema(schema.items, where, `${path}[*]`);
    if (typeof schema.additionalProperties === 'object')
      this.compileSchema(schema.additionalProperties, where, `${path}[*]`);
  }

  private compile(r: CelRule, where: string): CompiledRule | undefined {
    try {
      const parsed = parse(r.rule);
      const missing = [...calledFunctions(parsed.expr, new Set())].filter(
        (f) => !isOperator(f) && !env().funcs.find(f),
      );
      if (missing.length) {
        this.unevaluated.push(`${where}: ${r.rule} (no implementation of ${missing.join(', ')})`);
        return undefined;
      }
      const program = plan(env(), parsed) as (ctx: Record<string, unknown>) => unknown;
      return { ...r, program, transition: /\boldSelf\b/.test(r.rule) };
    } catch (e) {
      this.unevaluated.push(`${where}: ${r.rule} (${(e as Error).message.split('\n')[0]})`);
      return undefined;
    }
  }

  /** Evaluates every compiled rule against `value` walking `schema`; one cause per failed rule. */
  validate(schema: any, value: unknown, oldValue: unknown, field: string, causes: StatusCause[]): void {
    if (!schema || typeof schema !== 'object' || value === undefined || value === null) return;
    const rules = this.compiled.get(schema);
    if (rules) {
      const self = toCel(schema, value);
      for (const r of rules) {
        if (r.transition && oldValue === undefined) continue;
        const ctx: Record<string, unknown> = { self };
        if (r.transition) ctx.oldSelf = toCel(schema, oldValue);
        const result = r.program(ctx);
        const at = r.fieldPath ? `${field}${r.fieldPath}` : field;
        if (isCelError(result))
          causes.push({
            reason: 'FieldValueInvalid',
            field: at,
            message: `Invalid value: ${describe(value)}: ${result.message}`,
          });
        else if (result !== true)
          causes.push({
            reason: 'FieldValueInvalid',
            field: at,
            message: `Invalid value: ${describe(value)}: ${r.message ?? `failed rule: ${r.rule}`}`,
          });
      }
    }
    const old = (k: string | number) =>
      oldValue && typeof oldValue === 'object' ? (oldValue as any)[k] : undefined;
    if (Array.isArray(value) && schema.items) {
      for (const [i, v] of value.entries())
        this.validate(schema.items, v, undefined, `${field}[${i}]`, causes);
    } else if (typeof value === 'object') {
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        const sub =
          schema.properties?.[k] ??
          (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
        if (sub)
          this.validate(sub, v, old(k), schema.properties?.[k] ? `${field}.${k}` : `${field}[${k}]`, causes);
      }
    }
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return `"${Array.isArray(value) ? 'array' : 'object'}"`;
}

/** JSON → CEL values by schema: integers become int (bigint), objects maps, as Kubernetes binds them. */
export function toCel(schema: any, value: unknown): any {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number') {
    const integer =
      schema?.type === 'integer' || (schema?.['x-kubernetes-int-or-string'] && Number.isInteger(value));
    return integer && Number.isInteger(value) ? BigInt(value) : value;
  }
  if (Array.isArray(value)) return value.map((v) => toCel(schema?.items, v));
  if (typeof value === 'object') {
    const m = new Map<string, unknown>();
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const sub =
        schema?.properties?.[k] ??
        (typeof schema?.additionalProperties === 'object' ? schema.additionalProperties : undefined);
      m.set(k, toCel(sub, v));
    }
    return m;
  }
  return value;
}
