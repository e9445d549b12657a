import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import { type ObjectApi, PATCH_TYPES, parseJson, type Target } from './api.ts';
import { type AuthOptions, authenticate, authorize } from './auth.ts';
import { apiGroupList, apiResourceList, apiVersions, SERVER_VERSION } from './discovery.ts';
import { type Faults, parseFaultRules } from './faults.ts';
import type { OpenApi } from './openapi.ts';
import type { Rbac } from './rbac.ts';
import { typeByPlural } from './resources.ts';
import { handleScale, SCALABLE_KINDS } from './scale.ts';
import { KubeError } from './status.ts';
import { toTable, wantsTable } from './table.ts';
import { serveWatch } from './watch.ts';

const MAX_BODY = 3 * 1024 * 1024;

export interface ServerDeps {
  api: ObjectApi;
  openapi: OpenApi;
  faults: Faults;
  auth: AuthOptions;
  /** RBAC from roles and bindings; replaces `auth` when set. */
  rbac?: Rbac;
  address: () => string;
  /** Streams to end when the simulator closes. */
  watches: Set<() => void>;
}

function sendJson(
  res: ServerResponse,
  code: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', ...headers });
  res.end(text);
}

function sendError(res: ServerResponse, e: KubeError): void {
  const headers: Record<string, string> = {};
  if (e.details?.retryAfterSeconds !== undefined)
    headers['Retry-After'] = String(e.details.retryAfterSeconds);
  sendJson(res, e.code, e.toStatus(), headers);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new KubeError(413, 'BadRequest', `the request body is larger than ${MAX_BODY} bytes`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** JSON by default; YAML when the client says so (kubectl never does, curl users might). */
function parseBody(raw: string, contentType: string | undefined): unknown {
  if (/yaml/.test(contentType ?? '')) {
    try {
      return parseYaml(raw);
    } catch (e) {
      throw new KubeError(
        400,
        'BadRequest',
        `the request body is not valid YAML: ${(e as Error).message.split('\n')[0]}`,
      );
    }
  }
  return parseJson(raw);
}

/** /api/v1/... or /apis/<group>/<version>/...: the resource, namespace, name and subresource addressed. */
function resolveTarget(parts: string[]): Target | undefined {
  let group: string;
  let version: string;
  let rest: string[];
  if (parts[0] === 'api') [group, version, rest] = ['', parts[1]!, parts.slice(2)];
  else if (parts[0] === 'apis') [group, version, rest] = [parts[1]!, parts[2]!, parts.slice(3)];
  else return undefined;
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [plural, name, subresource, ...extra] = rest;
  if (!plural || extra.length) return undefined;
  const t = typeByPlural(group, version, plural);
  if (!t) return undefined;
  if (t.namespaced !== (namespace !== undefined) && name !== undefined) return undefined;
  if (!t.namespaced && namespace !== undefined) return undefined;
  if (
    subresource !== undefined &&
    !(subresource === 'status' && t.statusSubresource) &&
    !(subresource === 'scale' && SCALABLE_KINDS.has(t.kind) && name !== undefined)
  )
    return undefined;
  return { t, version, namespace, name, subresource };
}

function verbOf(method: string, x: Target, q: URLSearchParams): string {
  if (method === 'GET')
    return x.name ? 'get' : q.get('watch') === 'true' || q.get('watch') === '1' ? 'watch' : 'list';
  return { POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' }[method] ?? method.toLowerCase();
}

export function createHandler(deps: ServerDeps) {
  const { api, openapi, faults, auth } = deps;

  async function handleAdmin(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (path === '/_sandbox/faults') {
      if (req.method === 'GET') return sendJson(res, 200, { faults: faults.list() });
      if (req.method === 'DELETE') {
        faults.clear();
        return sendJson(res, 200, { faults: [] });
      }
      if (req.method === 'POST' || req.method === 'PUT') {
        const body = parseJson(await readBody(req)) as { faults?: unknown } | unknown[];
        faults.set(parseFaultRules(Array.isArray(body) ? body : body?.faults));
        return sendJson(res, 200, { faults: faults.list() });
      }
    }
    if (path === '/_sandbox/writes') {
      if (req.method === 'GET') return sendJson(res, 200, { writes: api.writes });
      if (req.method === 'DELETE') {
        api.writes.splice(0);
        return sendJson(res, 200, { writes: [] });
      }
    }
    throw new KubeError(
      404,
      'NotFound',
      `no admin endpoint ${req.method} ${path}; use /_sandbox/faults or /_sandbox/writes`,
    );
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const q = url.searchParams;
    const method = req.method ?? 'GET';
    if (path === '/healthz' || path === '/livez' || path === '/readyz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('ok');
      return;
    }
    if (!deps.rbac) authenticate(auth, req.headers);
    const user = deps.rbac?.authenticate(req.headers) ?? '';
    if (path.startsWith('/_sandbox/')) return handleAdmin(req, res, path);

    if (method === 'GET') {
      if (path === '/version') return sendJson(res, 200, SERVER_VERSION);
      if (path === '/api') return sendJson(res, 200, apiVersions(deps.address()));
      if (path === '/apis') return sendJson(res, 200, apiGroupList());
      if (path === '/openapi/v3') return sendJson(res, 200, openapi.index());
      if (path.startsWith('/openapi/v3/')) {
        const doc = openapi.document(path.slice('/openapi/v3/'.length));
        if (doc) return sendJson(res, 200, doc);
      }
      const gv = /^\/api\/(v1)$/.exec(path) ?? /^\/apis\/([^/]+\/[^/]+)$/.exec(path);
      if (gv) {
        const [group, version] = gv[1]!.includes('/') ? gv[1]!.split('/') : ['', gv[1]!];
        const list = apiResourceList(group!, version!);
        if (list) return sendJson(res, 200, list);
      }
    }
    const x = resolveTarget(path.split('/').filter(Boolean));
    if (!x) throw new KubeError(404, 'NotFound', 'the server could not find the requested resource', {});
    const verb = verbOf(method, x, q);
    if (deps.rbac) deps.rbac.authorize(user, verb, x.t, x.namespace, x.name, x.subresource);
    else authorize(auth, verb, x.t, x.namespace, x.name);
    const fault = await faults.apply(verb, x.t, x.name);
    if (fault) {
      // Drain the body so the connection stays usable for the client's retry.
      if (method !== 'GET') await readBody(req).catch(() => '');
      throw fault;
    }
    const dryRun = q.getAll('dryRun');
    const unsupported = dryRun.find((v) => v !== 'All');
    if (unsupported !== undefined)
      throw new KubeError(
        400,
        'BadRequest',
        `dryRun: Unsupported value: ${JSON.stringify(unsupported)}: supported values: "All"`,
      );
    if (x.subresource === 'scale') {
      const raw = method === 'GET' ? '' : await readBody(req);
      return sendJson(res, 200, handleScale(api, x, method, raw, req.headers['content-type'] ?? ''));
    }
    const opts = { strict: q.get('fieldValidation') === 'Strict', dryRun: dryRun.length > 0 };
    switch (verb) {
      case 'get': {
        const obj = api.get(x);
        return sendJson(res, 200, wantsTable(req.headers.accept) ? toTable(x.t, [obj]) : obj);
      }
      case 'list': {
        const list = api.list(x, q);
        return sendJson(
          res,
          200,
          wantsTable(req.headers.accept) ? toTable(x.t, list.items, list.metadata) : list,
        );
      }
      case 'watch':
        return serveWatch(
          api.store,
          x,
          q,
          res,
          (stop) => deps.watches.add(stop),
          (o) => (wantsTable(req.headers.accept) ? toTable(x.t, [o]) : o),
        );
      case 'create':
        // Namespaced objects are created under /namespaces/<ns>/, as in the API server.
        if (x.name || (x.t.namespaced && x.namespace === undefined)) break;
        return sendJson(
          res,
          201,
          api.create(x, parseBody(await readBody(req), req.headers['content-type']), opts),
        );
      case 'update':
        if (!x.name) break;
        return sendJson(
          res,
          200,
          api.update(x, parseBody(await readBody(req), req.headers['content-type']), opts),
        );
      case 'patch': {
        if (!x.name) break;
        const type = req.headers['content-type'] ?? '';
        const before = api.store.get(x.t, x.namespace, x.name);
        const out = api.patch(x, type, await readBody(req), q, opts);
        return sendJson(res, !before && type.startsWith(PATCH_TYPES.apply) ? 201 : 200, out);
      }
      case 'delete': {
        const raw = await readBody(req);
        const body = raw.trim() ? parseJson(raw) : undefined;
        if (!x.name) {
          // deletecollection: every object the list selectors pick, answered as the list of what was deleted.
          const list = api.list(x, q);
          for (const o of list.items)
            api.delete({ ...x, namespace: o.metadata.namespace, name: o.metadata.name }, body, opts);
          return sendJson(res, 200, list);
        }
        const out = api.delete(x, body, opts);
        // The API server answers a completed delete of a built-in type with a Success Status, and of a custom resource with the object.
        if (x.t.builtIn)
          return sendJson(res, 200, {
            kind: 'Status',
            apiVersion: 'v1',
            metadata: {},
            status: 'Success',
            details: { name: x.name, group: x.t.group, kind: x.t.plural, uid: out.metadata.uid },
          });
        return sendJson(res, 200, out);
      }
    }
    throw new KubeError(
      405,
      'MethodNotAllowed',
      `the server does not allow this method on the requested resource: ${method} ${path}`,
    );
  }

  return (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((e) => {
      if (res.headersSent) return void res.end();
      if (e instanceof KubeError) return sendError(res, e);
      // A bug in the simulator, not bad input: say so plainly.
      sendError(
        res,
        new KubeError(500, 'InternalError', `Internal error occurred: ${(e as Error).stack ?? String(e)}`),
      );
    });
  };
}
