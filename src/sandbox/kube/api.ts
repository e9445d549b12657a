// biome-ignore-all lint/suspicious/noExplicitAny: Kubernetes objects are arbitrary JSON whose shape is checked by schemas at run time, not by types.
import { randomBytes } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { checkBuiltIn } from './builtin-schema.ts';
import { deepEqual, jsonPatch, mergePatch, strategicMergePatch } from './patch.ts';
import { apiVersionOf, RESOURCE_TYPES, type ResourceType } from './resources.ts';
import { fieldSelector, labelSelector } from './selectors.ts';
import {
  alreadyExists,
  badRequest,
  conflict,
  invalid,
  KubeError,
  namespaceNotFound,
  notFound,
} from './status.ts';
import type { ObjectStore } from './store.ts';
import type { Validator } from './validation.ts';

export type WriteVerb = 'create' | 'update' | 'patch' | 'delete';

export interface WriteLogEntry {
  time: number;
  verb: WriteVerb;
  group: string;
  version: string;
  resource: string;
  namespace?: string;
  name: string;
  resourceVersion: string;
  patchType?: string;
  /** The object as stored after the write (for delete: the object deleted). */
  body: unknown;
}

/** Where a request points: the type, the version the client speaks, and the object. */
export interface Target {
  t: ResourceType;
  version: string;
  namespace?: string;
  name?: string;
  /** 'status' for the status subresource. */
  subresource?: string;
}

export interface WriteOptions {
  /** fieldValidation=Strict: unknown fields are an error instead of being dropped. */
  strict?: boolean;
  /** dryRun=All: validated and answered as if written, but nothing is stored, logged or watched. */
  dryRun?: boolean;
}

export const PATCH_TYPES = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
} as const;

const NAMESPACE_TYPE = RESOURCE_TYPES.find((t) => t.kind === 'Namespace')!;

const isObject = (v: unknown): v is Record<string, any> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The object as a client speaking `version` sees it: a copy, with that apiVersion. */
export function present(t: ResourceType, version: string, obj: any): any {
  const { apiVersion: _a, kind: _k, ...rest } = structuredClone(obj);
  return { apiVersion: apiVersionOf(t.group, version), kind: t.kind, ...rest };
}

/** Everything but the server-maintained resourceVersion, to detect no-op writes. */
function sameContent(a: any, b: any): boolean {
  const strip = (o: any) => ({
    ...o,
    metadata: { ...o.metadata, resourceVersion: undefined, managedFields: undefined },
  });
  return deepEqual(JSON.parse(JSON.stringify(strip(a))), JSON.parse(JSON.stringify(strip(b))));
}

/**
 * The semantics of the API server's object operations over the store: validation, optimistic
 * concurrency, generation, status subresource, no-op detection. Transport-free so the HTTP
 * server and the simulator's direct access share it.
 */
export class ObjectApi {
  readonly writes: WriteLogEntry[] = [];

  constructor(
    readonly store: ObjectStore,
    readonly validator: Validator,
  ) {}

  get(x: Target): any {
    const obj = this.store.get(x.t, x.namespace, x.name!);
    if (!obj) throw notFound(x.t, x.name!);
    return present(x.t, x.version, obj);
  }

  list(x: Target, q: URLSearchParams): any {
    const byLabel = labelSelector(q.get('labelSelector'));
    const byField = fieldSelector(q.get('fieldSelector'), x.t.kind);
    let items = this.store.list(x.t, x.namespace).filter((o) => byLabel(o) && byField(o));
    const rv = String(this.store.resourceVersion);
    let cont: string | undefined;
    let remaining: number | undefined;
    const token = q.get('continue');
    if (token) {
      let after: string;
      try {
        after = JSON.parse(Buffer.from(token, 'base64url').toString()).after;
        if (typeof after !== 'string') throw new Error();
      } catch {
        throw badRequest('continue token is not valid; start the list again without continue');
      }
      items = items.filter((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}` > after);
    }
    const limit = Number(q.get('limit') ?? 0);
    if (limit > 0 && items.length > limit) {
      remaining = items.length - limit;
      items = items.slice(0, limit);
      const last = items[items.length - 1];
      cont = Buffer.from(
        JSON.stringify({ after: `${last.metadata.namespace ?? ''}/${last.metadata.name}` }),
      ).toString('base64url');
    }
    return {
      apiVersion: apiVersionOf(x.t.group, x.version),
      kind: `${x.t.kind}List`,
      metadata: { resourceVersion: rv, ...(cont ? { continue: cont, remainingItemCount: remaining } : {}) },
      items: items.map((o) => present(x.t, x.version, o)),
    };
  }

  create(x: Target, body: unknown, opts: WriteOptions = {}, log = true): any {
    const obj = this.checkBody(x, body);
    const meta = obj.metadata;
    if (!meta.name && typeof meta.generateName === 'string' && meta.generateName)
      meta.name = meta.generateName + randomBytes(3).toString('hex').slice(0, 5);
    if (x.t.namespaced && x.namespace && !this.store.get(NAMESPACE_TYPE, undefined, x.namespace) && log)
      throw namespaceNotFound(x.namespace);
    if (meta.name && this.store.get(x.t, x.namespace, meta.name)) throw alreadyExists(x.t, meta.name);
    for (const k of ['resourceVersion', 'uid', 'creationTimestamp', 'managedFields', 'deletionTimestamp'])
      delete meta[k];
    // A status subresource means clients cannot set status when they create the object.
    if (x.t.statusSubresource && log) delete obj.status;
    meta.generation = 1;
    return this.commit(x, obj, undefined, opts, log ? { verb: 'create' } : undefined);
  }

  /** `log` false: direct access from the sandbox, which may write without a resourceVersion and is not logged. */
  update(x: Target, body: unknown, opts: WriteOptions = {}, log = true): any {
    const obj = this.checkBody(x, body);
    const old = this.store.get(x.t, x.namespace, x.name!);
    if (!old) throw notFound(x.t, x.name!);
    const rv = obj.metadata.resourceVersion;
    if (!rv && !x.t.allowUnconditionalUpdate && log)
      throw invalid(x.t, x.name!, [
        {
          reason: 'FieldValueInvalid',
          field: 'metadata.resourceVersion',
          message: 'Invalid value: 0x0: must be specified for an update',
        },
      ]);
    if (rv && rv !== old.metadata.resourceVersion) throw conflict(x.t, x.name!);
    return this.commit(x, this.merged(x, old, obj), old, opts, log ? { verb: 'update' } : undefined);
  }

  patch(x: Target, patchType: string, raw: string, q: URLSearchParams, opts: WriteOptions = {}): any {
    const type = patchType.split(';')[0]!.trim();
    const old = this.store.get(x.t, x.namespace, x.name!);
    if (type === PATCH_TYPES.apply) return this.apply(x, raw, q, old, opts);
    if (type === PATCH_TYPES.strategic && !x.t.builtIn)
      throw new KubeError(
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types include: ${PATCH_TYPES.json}, ${PATCH_TYPES.merge}, ${PATCH_TYPES.apply}`,
      );
    if (type !== PATCH_TYPES.merge && type !== PATCH_TYPES.json && type !== PATCH_TYPES.strategic)
      throw new KubeError(
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types include: ${Object.values(PATCH_TYPES).join(', ')}`,
      );
    if (!old) throw notFound(x.t, x.name!);
    const patch = parseJson(raw);
    const current = present(x.t, x.version, old);
    let next: any;
    if (type === PATCH_TYPES.json) next = jsonPatch(current, patch);
    else {
      if (!isObject(patch)) throw badRequest(`a ${type} body must be a JSON object`);
      next = type === PATCH_TYPES.merge ? mergePatch(current, patch) : strategicMergePatch(current, patch);
    }
    if (!isObject(next)) throw badRequest('the patch does not leave an object');
    // A resourceVersion in the patch is a precondition, as in the API server.
    const rv = next.metadata?.resourceVersion;
    if (rv !== undefined && rv !== old.metadata.resourceVersion) throw conflict(x.t, x.name!);
    const obj = this.checkBody(x, next);
    return this.commit(x, this.merged(x, old, obj), old, opts, { verb: 'patch', patchType: type });
  }

  /** Server-side apply, simplified: the applied configuration is merged into the live object (lists replaced); field ownership is not tracked. */
  private apply(x: Target, raw: string, q: URLSearchParams, old: any, opts: WriteOptions): any {
    if (!q.get('fieldManager'))
      throw badRequest(
        'PATCH with application/apply-patch+yaml requires the fieldManager query parameter; kubectl sets it with --field-manager',
      );
    let applied: unknown;
    try {
      applied = parseYaml(raw);
    } catch (e) {
      throw badRequest(
        `the applied configuration is not valid YAML or JSON: ${(e as Error).message.split('\n')[0]}`,
      );
    }
    if (!isObject(applied)) throw badRequest('the applied configuration must be an object');
    if (!old) {
      // Created unlogged so the write log shows the apply as the one patch it was.
      if (x.t.namespaced && x.namespace && !this.store.get(NAMESPACE_TYPE, undefined, x.namespace))
        throw namespaceNotFound(x.namespace);
      if (x.t.statusSubresource) delete applied.status;
      const created = this.create(
        { ...x },
        { ...applied, metadata: { ...applied.metadata, name: x.name } },
        opts,
        false,
      );
      if (!opts.dryRun) this.log({ verb: 'patch', patchType: PATCH_TYPES.apply }, x, created);
      return created;
    }
    const next = mergePatch(present(x.t, x.version, old), applied);
    const obj = this.checkBody(x, next);
    return this.commit(x, this.merged(x, old, obj), old, opts, {
      verb: 'patch',
      patchType: PATCH_TYPES.apply,
    });
  }

  delete(x: Target, body: unknown, opts: WriteOptions = {}): any {
    const old = this.store.get(x.t, x.namespace, x.name!);
    if (!old) throw notFound(x.t, x.name!);
    const pre = isObject(body) ? body.preconditions : undefined;
    if (pre?.resourceVersion && pre.resourceVersion !== old.metadata.resourceVersion)
      throw conflict(x.t, x.name!);
    if (pre?.uid && pre.uid !== old.metadata.uid) throw conflict(x.t, x.name!);
    // kubectl delete --dry-run=server says it in the DeleteOptions body, not the query.
    const dry = isObject(body) ? body.dryRun : undefined;
    if (dry !== undefined && (!Array.isArray(dry) || dry.some((v) => v !== 'All')))
      throw badRequest(`dryRun: Unsupported value: ${JSON.stringify(dry)}: supported values: "All"`);
    if (opts.dryRun || dry?.length) return present(x.t, x.version, old);
    const deleted = this.store.delete(x.t, x.namespace, x.name!);
    // Deleting a namespace deletes what is in it (at once; a real cluster finalizes in the background).
    if (x.t === NAMESPACE_TYPE)
      for (const t of RESOURCE_TYPES)
        if (t.namespaced)
          for (const o of this.store.list(t, x.name)) this.store.delete(t, x.name, o.metadata.name);
    this.log({ verb: 'delete' }, x, deleted);
    return present(x.t, x.version, deleted);
  }

  /** The body as an object of the target's type, in the target's namespace and name. */
  private checkBody(x: Target, body: unknown): any {
    if (!isObject(body)) throw badRequest(`the request body must be a ${x.t.kind} object`);
    const obj = structuredClone(body);
    const want = apiVersionOf(x.t.group, x.version);
    if (obj.apiVersion !== undefined && obj.apiVersion !== want)
      throw badRequest(
        `the API version in the data (${obj.apiVersion}) does not match the expected API version (${want})`,
      );
    if (obj.kind !== undefined && obj.kind !== x.t.kind)
      throw badRequest(`the kind in the data (${obj.kind}) does not match the expected kind (${x.t.kind})`);
    obj.apiVersion = want;
    obj.kind = x.t.kind;
    if (!isObject(obj.metadata)) obj.metadata = {};
    const meta = obj.metadata;
    if (x.name && meta.name !== undefined && meta.name !== x.name)
      throw badRequest(
        `the name of the object (${meta.name}) does not match the name on the URL (${x.name})`,
      );
    if (x.name) meta.name = x.name;
    if (x.t.namespaced) {
      if (meta.namespace !== undefined && meta.namespace !== x.namespace)
        throw badRequest(
          'the namespace of the provided object does not match the namespace sent on the request',
        );
      meta.namespace = x.namespace;
    } else delete meta.namespace;
    return obj;
  }

  /** Server-owned fields come from the stored object; a status subresource splits who may write what. */
  private merged(x: Target, old: any, obj: any): any {
    for (const k of ['uid', 'creationTimestamp', 'generation']) obj.metadata[k] = old.metadata[k];
    delete obj.metadata.resourceVersion;
    if (x.t.statusSubresource) {
      if (x.subresource === 'status') return { ...present(x.t, x.version, old), status: obj.status };
      if (old.status === undefined) delete obj.status;
      else obj.status = structuredClone(old.status);
    }
    return obj;
  }

  private commit(
    x: Target,
    obj: any,
    old: any,
    opts: WriteOptions,
    log: { verb: WriteVerb; patchType?: string } | undefined,
  ): any {
    const name = obj.metadata.name ?? '';
    if (old && !deepEqual(old.spec, obj.spec)) obj.metadata.generation = (old.metadata.generation ?? 1) + 1;
    const causes = this.validator.validate(
      x.t,
      x.version,
      obj,
      old ? present(x.t, x.version, old) : undefined,
    );
    const builtIn = checkBuiltIn(x.t, obj);
    causes.push(...builtIn.causes);
    if (causes.length) throw invalid(x.t, name, causes);
    const unknown = this.validator.unknownFields(x.t, x.version, obj);
    // Built-in objects keep undeclared fields unless the client asked for strict validation.
    if (opts.strict) unknown.push(...builtIn.unknown);
    if (unknown.length && opts.strict)
      throw badRequest(`strict decoding error: ${unknown.map((f) => `unknown field "${f}"`).join(', ')}`);
    for (const f of unknown) removeField(obj, f);
    if (old && sameContent(present(x.t, x.version, old), obj)) return present(x.t, x.version, old);
    if (opts.dryRun)
      return { ...obj, metadata: { ...obj.metadata, resourceVersion: old?.metadata.resourceVersion } };
    obj.apiVersion = apiVersionOf(x.t.group, x.t.storageVersion);
    const stored = this.store.put(x.t, obj);
    if (log) this.log(log, x, stored);
    return present(x.t, x.version, stored);
  }

  private log(what: { verb: WriteVerb; patchType?: string }, x: Target, obj: any): void {
    this.writes.push({
      time: Date.now(),
      verb: what.verb,
      group: x.t.group,
      version: x.version,
      resource: x.subresource ? `${x.t.plural}/${x.subresource}` : x.t.plural,
      ...(x.t.namespaced ? { namespace: obj.metadata.namespace } : {}),
      name: obj.metadata.name,
      resourceVersion: obj.metadata.resourceVersion,
      ...(what.patchType ? { patchType: what.patchType } : {}),
      body: present(x.t, x.version, obj),
    });
  }
}

/** Drops one field given as "spec.http[0].foo" (pruning, as the API server does with undeclared fields). */
function removeField(obj: any, path: string): void {
  const tokens = [...path.matchAll(/([^.[\]]+)|\[([^\]]+)\]/g)].map((m) => m[1] ?? m[2]!);
  let cur = obj;
  for (const t of tokens.slice(0, -1)) cur = cur?.[t];
  if (cur && typeof cur === 'object') delete cur[tokens[tokens.length - 1]!];
}

export function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch (e) {
    throw badRequest(`the request body is not valid JSON: ${(e as Error).message}`);
  }
}
