// biome-ignore-all lint/suspicious/noExplicitAny: Kubernetes objects are arbitrary JSON whose shape is checked by schemas at run time, not by types.
import { type ObjectApi, PATCH_TYPES, parseJson, type Target } from './api.ts';
import { jsonPatch, mergePatch } from './patch.ts';
import { badRequest, invalid, KubeError } from './status.ts';

/** Kinds with a /scale subresource (autoscaling/v1 Scale), as `kubectl scale` uses it. */
export const SCALABLE_KINDS = new Set(['Deployment', 'ReplicaSet']);

function selectorString(obj: any): string {
  const labels = obj.spec?.selector?.matchLabels ?? {};
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** The Scale view of a scalable object. */
export function scaleOf(obj: any): any {
  const m = obj.metadata;
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      creationTimestamp: m.creationTimestamp,
    },
    spec: { replicas: typeof obj.spec?.replicas === 'number' ? obj.spec.replicas : 1 },
    status: { replicas: obj.status?.replicas ?? 0, selector: selectorString(obj) },
  };
}

/** GET, PUT or PATCH of `<object>/scale`: reads or sets spec.replicas of the object behind it. */
export function handleScale(
  api: ObjectApi,
  x: Target,
  method: string,
  raw: string,
  contentType: string,
): any {
  const main: Target = { ...x, subresource: undefined };
  const current = api.get(main);
  if (method === 'GET') return scaleOf(current);
  let next: any;
  if (method === 'PUT') next = parseJson(raw);
  else if (method === 'PATCH') {
    const type = contentType.split(';')[0]!.trim();
    const patch = parseJson(raw);
    if (type === PATCH_TYPES.json) next = jsonPatch(scaleOf(current), patch);
    else if (type === PATCH_TYPES.merge || type === PATCH_TYPES.strategic) {
      if (typeof patch !== 'object' || patch === null || Array.isArray(patch))
        throw badRequest(`a ${type} body must be a JSON object`);
      next = mergePatch(scaleOf(current), patch as Record<string, unknown>);
    } else
      throw new KubeError(
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types include: ${PATCH_TYPES.json}, ${PATCH_TYPES.merge}, ${PATCH_TYPES.strategic}`,
      );
  } else
    throw new KubeError(
      405,
      'MethodNotAllowed',
      `the scale subresource allows GET, PUT and PATCH, not ${method}`,
    );
  const replicas = next?.spec?.replicas;
  if (!Number.isInteger(replicas) || replicas < 0 || replicas > 10_000)
    throw invalid(x.t, x.name!, [
      {
        reason: 'FieldValueInvalid',
        field: 'spec.replicas',
        message: `Invalid value: ${JSON.stringify(replicas)}: must be an integer from 0 to 10000`,
      },
    ]);
  const rv = next.metadata?.resourceVersion;
  const body = JSON.stringify({
    spec: { replicas },
    ...(rv && method === 'PUT' ? { metadata: { resourceVersion: rv } } : {}),
  });
  return scaleOf(api.patch(main, PATCH_TYPES.merge, body, new URLSearchParams()));
}
