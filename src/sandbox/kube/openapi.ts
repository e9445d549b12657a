// biome-ignore-all lint/suspicious/noExplicitAny: Kubernetes objects are arbitrary JSON whose shape is checked by schemas at run time, not by types.
import { createHash } from 'node:crypto';
import { servedGroupVersions } from './discovery.ts';
import { apiVersionOf, RESOURCE_TYPES, type ResourceType } from './resources.ts';
import type { Validator } from './validation.ts';

const OBJECT_META = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';

/** Schema name as the API server names it: "io.istio.networking.v1.VirtualService", "io.k8s.api.apps.v1.Deployment". */
function schemaName(t: ResourceType, version: string): string {
  if (t.builtIn) return `io.k8s.api.${t.group || 'core'}.${version}.${t.kind}`;
  const reversed = t.group.split('.').reverse().join('.');
  return `${reversed}.${version}.${t.kind}`;
}

function gvkExtension(t: ResourceType, version: string) {
  return [{ group: t.group, version, kind: t.kind }];
}

/**
 * A schema for the type: the CRD's openAPIV3Schema when a CRDs file was given, otherwise one that
 * declares only the top-level shape and keeps every other field, so kubectl's client-side
 * validation accepts what the server then validates with the generated models.
 */
function resourceSchema(t: ResourceType, version: string, validator: Validator): any {
  const crd = validator.crdSchema(t, version);
  const base = crd
    ? structuredClone(crd)
    : {
        type: 'object',
        properties: { spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
      };
  base.properties = {
    apiVersion: { type: 'string' },
    kind: { type: 'string' },
    metadata: { allOf: [{ $ref: `#/components/schemas/${OBJECT_META}` }], default: {} },
    ...base.properties,
    status: base.properties?.status ?? { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
  };
  base['x-kubernetes-group-version-kind'] = gvkExtension(t, version);
  return base;
}

/** Query parameters kubectl looks for to decide whether the server validates fields itself. */
const WRITE_PARAMS = ['dryRun', 'fieldManager', 'fieldValidation'].map((name) => ({
  name,
  in: 'query',
  schema: { type: 'string', uniqueItems: true },
}));

function operations(t: ResourceType, version: string) {
  const ext = { 'x-kubernetes-group-version-kind': gvkExtension(t, version)[0] };
  const ref = { $ref: `#/components/schemas/${schemaName(t, version)}` };
  const body = { content: { 'application/json': { schema: ref } } };
  const ok = {
    responses: { '200': { description: 'OK', content: { 'application/json': { schema: ref } } } },
  };
  const patchBody = {
    content: Object.fromEntries(
      [
        'application/apply-patch+yaml',
        'application/json-patch+json',
        'application/merge-patch+json',
        ...(t.builtIn ? ['application/strategic-merge-patch+json'] : []),
      ].map((m) => [m, { schema: { type: 'object' } }]),
    ),
  };
  const prefix = t.group ? `/apis/${t.group}/${version}` : `/api/${version}`;
  const collection = t.namespaced ? `${prefix}/namespaces/{namespace}/${t.plural}` : `${prefix}/${t.plural}`;
  return {
    [collection]: {
      get: { ...ext, 'x-kubernetes-action': 'list', ...ok },
      post: { ...ext, 'x-kubernetes-action': 'post', parameters: WRITE_PARAMS, requestBody: body, ...ok },
    },
    [`${collection}/{name}`]: {
      get: { ...ext, 'x-kubernetes-action': 'get', ...ok },
      put: { ...ext, 'x-kubernetes-action': 'put', parameters: WRITE_PARAMS, requestBody: body, ...ok },
      patch: {
        ...ext,
        'x-kubernetes-action': 'patch',
        parameters: [...WRITE_PARAMS, { name: 'force', in: 'query', schema: { type: 'boolean' } }],
        requestBody: patchBody,
        ...ok,
      },
      delete: { ...ext, 'x-kubernetes-action': 'delete', ...ok },
    },
  };
}

/** The OpenAPI v3 documents, built once: they only change with the set of types and the CRDs file. */
export class OpenApi {
  private readonly docs = new Map<string, string>();
  private readonly hashes = new Map<string, string>();

  constructor(validator: Validator) {
    for (const { group, version } of servedGroupVersions()) {
      const types = RESOURCE_TYPES.filter((t) => t.group === group && t.versions.includes(version));
      const schemas: Record<string, unknown> = {
        [OBJECT_META]: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
      };
      let paths = {};
      for (const t of types) {
        // kubectl patches core and apps objects with the schemas compiled into it; a partial
        // schema here would make it warn that it cannot find fields such as metadata.annotations.
        if (!t.builtIn) schemas[schemaName(t, version)] = resourceSchema(t, version, validator);
        paths = { ...paths, ...operations(t, version) };
      }
      const doc = JSON.stringify({
        openapi: '3.0.0',
        info: { title: 'Kubernetes', version: 'v1.32.0' },
        paths,
        components: { schemas },
      });
      const key = group ? `apis/${apiVersionOf(group, version)}` : `api/${version}`;
      this.docs.set(key, doc);
      this.hashes.set(key, createHash('sha512').update(doc).digest('hex').slice(0, 128).toUpperCase());
    }
  }

  index(): unknown {
    return {
      paths: Object.fromEntries(
        [...this.hashes].map(([key, hash]) => [
          key,
          { serverRelativeURL: `/openapi/v3/${key}?hash=${hash}` },
        ]),
      ),
    };
  }

  /** "apis/networking.istio.io/v1" → the document's JSON text. */
  document(key: string): string | undefined {
    return this.docs.get(key);
  }
}
