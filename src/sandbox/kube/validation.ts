// biome-ignore-all lint/suspicious/noExplicitAny: Kubernetes objects are arbitrary JSON whose shape is checked by schemas at run time, not by types.
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parseAllDocuments } from 'yaml';
import { CelRules } from './cel.ts';
import { RESOURCE_TYPES, type ResourceType } from './resources.ts';
import type { StatusCause } from './status.ts';

// ajv-formats ships CommonJS whose default export is the function itself.
const addFormats = ((addFormatsModule as any).default ?? addFormatsModule) as (ajv: Ajv) => void;

/** The openAPIV3Schema of one served version of a CRD, with its compiled validators. */
export interface CrdVersionSchema {
  schema: any;
  /** Compiled on first use: compiling every version of every CRD up front costs seconds. */
  validate?: ValidateFunction;
}

/** JSON pointer "/spec/http/0/route/0/weight" → Kubernetes field path "spec.http[0].route[0].weight". */
export function fieldPath(instancePath: string): string {
  let out = '';
  for (const raw of instancePath.split('/').slice(1)) {
    const t = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(t) ? `[${t}]` : out ? `.${t}` : t;
  }
  return out;
}

function valueAt(obj: any, instancePath: string): unknown {
  let cur = obj;
  for (const raw of instancePath.split('/').slice(1))
    cur = cur?.[raw.replace(/~1/g, '/').replace(/~0/g, '~')];
  return cur;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return '"array"';
  if (typeof v === 'object') return '"object"';
  return JSON.stringify(v);
}

/** One cause per failing field, worded as the API server words them. */
export function causesFromAjv(errors: ErrorObject[] | null | undefined, obj: any): StatusCause[] {
  const byField = new Map<string, StatusCause>();
  for (const e of errors ?? []) {
    // anyOf/oneOf only summarise their branches' errors; int-or-string fields report one type error instead.
    if (e.keyword === 'anyOf' || e.keyword === 'oneOf' || e.keyword === 'if') continue;
    let path = e.instancePath;
    if (e.keyword === 'required') path += `/${(e.params as { missingProperty: string }).missingProperty}`;
    const field = fieldPath(path);
    if (byField.has(field)) continue;
    const value = valueAt(obj, e.instancePath);
    let cause: StatusCause;
    switch (e.keyword) {
      case 'type': {
        const want = (e.params as { type: string }).type;
        cause = {
          reason: 'FieldValueTypeInvalid',
          field,
          message: `Invalid value: ${describe(typeof value === 'object' ? (Array.isArray(value) ? 'array' : 'object') : typeof value)}: ${field} in body must be of type ${want}: ${describe(typeof value === 'object' ? (Array.isArray(value) ? 'array' : 'object') : typeof value)}`,
        };
        break;
      }
      case 'required':
        cause = { reason: 'FieldValueRequired', field, message: 'Required value' };
        break;
      case 'enum': {
        const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map((a) =>
          JSON.stringify(a),
        );
        cause = {
          reason: 'FieldValueNotSupported',
          field,
          message: `Unsupported value: ${describe(value)}: supported values: ${allowed.join(', ')}`,
        };
        break;
      }
      default:
        cause = {
          reason: 'FieldValueInvalid',
          field,
          message: `Invalid value: ${describe(value)}: ${field} in body ${e.message}`,
        };
    }
    byField.set(field, cause);
  }
  return [...byField.values()];
}

/**
 * The validators @kubernetes-models/istio generated from Istio's CRDs, per group version; loaded
 * at start so validation itself is synchronous.
 */
const MODEL_MODULES: Record<string, () => Promise<Record<string, unknown>>> = {
  'networking.istio.io/v1': () => import('@kubernetes-models/istio/networking.istio.io/v1'),
  'networking.istio.io/v1beta1': () => import('@kubernetes-models/istio/networking.istio.io/v1beta1'),
  'networking.istio.io/v1alpha3': () => import('@kubernetes-models/istio/networking.istio.io/v1alpha3'),
  'security.istio.io/v1': () => import('@kubernetes-models/istio/security.istio.io/v1'),
  'security.istio.io/v1beta1': () => import('@kubernetes-models/istio/security.istio.io/v1beta1'),
};

const ISTIO_MODELS = new Map<string, (obj: any) => void>();

export async function preloadModels(): Promise<void> {
  for (const t of RESOURCE_TYPES) {
    if (t.builtIn) continue;
    for (const v of t.versions) {
      const key = `${t.group}/${v}/${t.kind}`;
      const load = MODEL_MODULES[`${t.group}/${v}`];
      if (ISTIO_MODELS.has(key) || !load) continue;
      const Model = (await load())[t.kind] as (new (o: unknown) => { validate(): void }) | undefined;
      if (!Model) throw new Error(`@kubernetes-models/istio has no ${t.kind} in ${t.group}/${v}`);
      ISTIO_MODELS.set(key, (obj) => new Model(obj).validate());
    }
  }
}

const CRD_CACHE = new Map<string, { crds: Map<string, CrdVersionSchema>; ajv?: Ajv; cel: CelRules }>();

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * Validation of stored objects: metadata as the API server checks it, Istio objects through the
 * generated models and, when a CRDs file is given, its openAPIV3Schema (ajv) and CEL rules.
 */
export class Validator {
  private crds = new Map<string, CrdVersionSchema>();
  private ajv?: Ajv;
  cel = new CelRules();

  constructor(crdsFile?: string) {
    if (!crdsFile) return;
    // Several simulators in one process (a test file) share the parsed and compiled CRDs.
    const cached = CRD_CACHE.get(crdsFile);
    if (cached) ({ crds: this.crds, ajv: this.ajv, cel: this.cel } = cached);
    else {
      this.loadCrds(crdsFile);
      CRD_CACHE.set(crdsFile, { crds: this.crds, ajv: this.ajv, cel: this.cel });
    }
  }

  get hasCrds(): boolean {
    return this.crds.size > 0;
  }

  crdSchema(t: ResourceType, version: string): any | undefined {
    return this.crds.get(`${t.group}/${version}/${t.plural}`)?.schema;
  }

  private loadCrds(file: string): void {
    const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: true });
    addFormats(ajv);
    for (const f of ['int32', 'int64', 'double', 'float', 'byte']) ajv.addFormat(f, true);
    this.ajv = ajv;
    const wanted = new Set(RESOURCE_TYPES.map((t) => `${t.plural}.${t.group}`));
    // Parsing only the CRDs served here keeps start-up fast: the file holds every Istio CRD.
    const texts = readFileSync(file, 'utf8')
      .split(/^---\s*$/m)
      .filter((text) => [...wanted].some((name) => text.includes(`name: ${name}`)));
    for (const text of texts) {
      const crd = parseAllDocuments(text)[0]?.toJS();
      if (crd?.kind !== 'CustomResourceDefinition') continue;
      const t = RESOURCE_TYPES.find((r) => r.group === crd.spec.group && r.plural === crd.spec.names.plural);
      if (!t) continue;
      for (const v of crd.spec.versions ?? []) {
        const schema = v.schema?.openAPIV3Schema;
        if (!schema || !t.versions.includes(v.name)) continue;
        this.crds.set(`${t.group}/${v.name}/${t.plural}`, { schema });
        this.cel.compileSchema(schema, `${crd.metadata.name} ${v.name}`);
      }
    }
  }

  /** Every failing field of `obj` (written at `version`); empty when it is valid. */
  validate(t: ResourceType, version: string, obj: any, old?: any): StatusCause[] {
    const causes: StatusCause[] = [];
    const meta = obj.metadata ?? {};
    if (!meta.name)
      causes.push({
        reason: 'FieldValueRequired',
        field: 'metadata.name',
        message: 'Required value: name or generateName is required',
      });
    else if (typeof meta.name !== 'string' || meta.name.length > 253 || !DNS1123_SUBDOMAIN.test(meta.name))
      causes.push({
        reason: 'FieldValueInvalid',
        field: 'metadata.name',
        message: `Invalid value: ${JSON.stringify(meta.name)}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
      });
    if (t.kind === 'Namespace' && meta.name && !DNS1123_LABEL.test(meta.name))
      causes.push({
        reason: 'FieldValueInvalid',
        field: 'metadata.name',
        message: `Invalid value: ${JSON.stringify(meta.name)}: a namespace name must be an RFC 1123 label`,
      });
    for (const k of ['labels', 'annotations'] as const) {
      const m = meta[k];
      if (m === undefined || m === null) continue;
      if (typeof m !== 'object' || Array.isArray(m))
        causes.push({
          reason: 'FieldValueTypeInvalid',
          field: `metadata.${k}`,
          message: 'Invalid value: must be a map of strings',
        });
      else
        for (const [lk, lv] of Object.entries(m))
          if (typeof lv !== 'string')
            causes.push({
              reason: 'FieldValueTypeInvalid',
              field: `metadata.${k}.${lk}`,
              message: `Invalid value: ${describe(lv)}: must be a string`,
            });
    }
    if (t.builtIn) return causes;

    const seen = new Set(causes.map((c) => c.field));
    const add = (more: StatusCause[]) => {
      for (const c of more) {
        if (seen.has(c.field)) continue;
        seen.add(c.field);
        causes.push(c);
      }
    };
    const model = ISTIO_MODELS.get(`${t.group}/${version}/${t.kind}`);
    if (model) {
      try {
        model({ ...obj, metadata: { ...meta } });
      } catch (e) {
        add(causesFromAjv((e as { errors?: ErrorObject[] }).errors, obj));
      }
    }
    const crd = this.crds.get(`${t.group}/${version}/${t.plural}`);
    if (crd) {
      crd.validate ??= this.ajv!.compile(crd.schema);
      if (!crd.validate(obj)) add(causesFromAjv(crd.validate.errors, obj));
      // CEL runs only on schema-valid values, as in the API server; its causes add to the schema's.
      if (causes.length === 0) {
        const cel: StatusCause[] = [];
        for (const k of ['spec'] as const)
          if (crd.schema.properties?.[k])
            this.cel.validate(crd.schema.properties[k], obj[k], old?.[k], k, cel);
        add(cel);
      }
    }
    return causes;
  }

  /**
   * Fields the CRD schema does not declare (what the API server prunes), as field paths. Empty
   * without a CRDs file, since the generated models do not say which fields are unknown.
   */
  unknownFields(t: ResourceType, version: string, obj: any): string[] {
    const schema = this.crdSchema(t, version);
    if (!schema) return [];
    const out: string[] = [];
    for (const [k, v] of Object.entries(obj)) {
      if (k === 'apiVersion' || k === 'kind' || k === 'metadata') continue;
      const sub = schema.properties?.[k];
      if (!sub) out.push(k);
      else walkUnknown(sub, v, k, out);
    }
    return out;
  }
}

function walkUnknown(schema: any, value: unknown, path: string, out: string[]): void {
  if (
    !schema ||
    value === null ||
    typeof value !== 'object' ||
    schema['x-kubernetes-preserve-unknown-fields']
  )
    return;
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) walkUnknown(schema.items, v, `${path}[${i}]`, out);
    return;
  }
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (schema.properties?.[k]) walkUnknown(schema.properties[k], v, `${path}.${k}`, out);
    else if (typeof schema.additionalProperties === 'object')
      walkUnknown(schema.additionalProperties, v, `${path}[${k}]`, out);
    else if (schema.additionalProperties !== true && schema.properties) out.push(`${path}.${k}`);
  }
}
