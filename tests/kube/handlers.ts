// The REST verbs on resource paths: list (or watch), get, create, update,
// patch, delete and deletecollection, with JSON or Table answers.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { KubeObject, Store, UpdateMode } from './store.ts';
import type { ResourcePath } from './resources.ts';
import type { WatchRegistry } from './watch.ts';
import { apiVersionOf } from './resources.ts';
import { applyPatch } from './patch.ts';
import { parseFieldSelector, parseLabelSelector, matchesFields, matchesLabels } from './selectors.ts';
import { ApiError, badRequest, failure, methodNotAllowed, notFound } from './status.ts';
import { toTable, wantsTable, type IncludeObject } from './table.ts';

export const MAX_REQUEST_BYTES = 3 * 1024 * 1024;
const DEFAULT_WATCH_TIMEOUT_MS = 1800_000;

export interface HandlerDeps {
  store: Store;
  watches: WatchRegistry;
  bookmarkIntervalMs: number;
}

export function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-cache, private' });
  res.end(text);
}

export async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total > MAX_REQUEST_BYTES) throw new ApiError(failure(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${MAX_REQUEST_BYTES}`));
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw badRequest(`error decoding the request body: ${(err as Error).message}`);
  }
}

/** A boolean query parameter as the real server reads it (strconv.ParseBool). */
export function isTrue(value: string | null): boolean {
  return value !== null && ['1', 't', 'T', 'true', 'TRUE', 'True'].includes(value);
}

function resourceVersionParam(params: URLSearchParams): string {
  const rv = params.get('resourceVersion') ?? '';
  if (rv !== '' && !/^\d+$/.test(rv)) throw badRequest(`invalid resource version: ${rv}`);
  return rv;
}

function includeObjectParam(params: URLSearchParams): IncludeObject {
  const value = params.get('includeObject') ?? 'Metadata';
  if (value !== 'None' && value !== 'Metadata' && value !== 'Object') throw badRequest(`includeObject: unsupported value "${value}"`);
  return value;
}

/** List items carry no kind/apiVersion on the real server. */
function asItem(obj: KubeObject): Record<string, unknown> {
  const { kind: _k, apiVersion: _a, ...rest } = obj;
  return rest;
}

function notFoundRoute(): ApiError {
  return new ApiError(failure(404, 'NotFound', 'the server could not find the requested resource', {}));
}

/** A field's value as a string, '' when it is missing or not a string. */
function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function selected(store: Store, path: ResourcePath, params: URLSearchParams): KubeObject[] {
  const labels = parseLabelSelector(params.get('labelSelector') ?? '');
  const fields = parseFieldSelector(params.get('fieldSelector') ?? '', path.def.kind);
  return store
    .list(path.def, path.namespace)
    .filter((o) => matchesLabels(labels, o.metadata['labels'] as Record<string, string> | undefined) && matchesFields(fields, o));
}

/** One request on a resource path: what it asks for and where the answer goes. */
interface ResourceRequest {
  path: ResourcePath;
  params: URLSearchParams;
  accept: string;
  res: ServerResponse;
}

function list(store: Store, { path, params, accept, res }: ResourceRequest): void {
  resourceVersionParam(params);
  const items = selected(store, path, params);
  const rv = String(store.currentResourceVersion());
  // limit is accepted, everything is answered in one page and no continue token is given.
  if (wantsTable(accept)) return sendJson(res, 200, toTable(path.def, items, rv, includeObjectParam(params)));
  sendJson(res, 200, { kind: `${path.def.kind}List`, apiVersion: apiVersionOf(path.def), metadata: { resourceVersion: rv }, items: items.map(asItem) });
}

function watch(deps: HandlerDeps, { path, params, accept, res }: ResourceRequest): void {
  const timeoutSeconds = Number(params.get('timeoutSeconds') ?? '0');
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds < 0) throw badRequest(`invalid timeoutSeconds: ${params.get('timeoutSeconds')}`);
  const sendInitial = params.get('sendInitialEvents');
  const table = wantsTable(accept);
  const include = table ? includeObjectParam(params) : 'Object';
  deps.watches.serve(
    {
      def: path.def,
      namespace: path.namespace,
      labels: parseLabelSelector(params.get('labelSelector') ?? ''),
      fields: parseFieldSelector(params.get('fieldSelector') ?? '', path.def.kind),
      resourceVersion: resourceVersionParam(params),
      allowBookmarks: isTrue(params.get('allowWatchBookmarks')),
      sendInitialEvents: sendInitial === null ? undefined : isTrue(sendInitial),
      timeoutMs: timeoutSeconds > 0 ? timeoutSeconds * 1000 : DEFAULT_WATCH_TIMEOUT_MS,
      bookmarkIntervalMs: deps.bookmarkIntervalMs,
      encode: table ? (o) => toTable(path.def, [o], str(o.metadata['resourceVersion']), include) : (o) => o,
      contentType: 'application/json',
    },
    res,
  );
}

function get(store: Store, { path, params, accept, res }: ResourceRequest): void {
  const obj = store.get(path.def, path.namespace, path.name);
  if (obj === undefined) throw notFound(path.def, path.name);
  if (wantsTable(accept)) return sendJson(res, 200, toTable(path.def, [obj], String(obj.metadata['resourceVersion']), includeObjectParam(params)));
  sendJson(res, 200, obj);
}

function deleteCollection(store: Store, { path, params, res }: ResourceRequest): void {
  const deleted = selected(store, path, params).map((o) => asItem(store.delete(path.def, str(o.metadata['namespace']), String(o.metadata['name']))));
  sendJson(res, 200, {
    kind: `${path.def.kind}List`,
    apiVersion: apiVersionOf(path.def),
    metadata: { resourceVersion: String(store.currentResourceVersion()) },
    items: deleted,
  });
}

function preconditionOf(body: string): string | undefined {
  if (body.trim() === '') return undefined;
  const options = parseJson(body);
  if (options === null || typeof options !== 'object') return undefined;
  const pre = (options as Record<string, unknown>)['preconditions'];
  if (pre === null || typeof pre !== 'object') return undefined;
  const rv = (pre as Record<string, unknown>)['resourceVersion'];
  return typeof rv === 'string' ? rv : undefined;
}

/** Answers one request on a resource path. */
export type ResourceHandler = (req: IncomingMessage, res: ServerResponse, path: ResourcePath, url: URL) => Promise<void>;

export function createResourceHandler(deps: HandlerDeps): ResourceHandler {
  const { store } = deps;

  return async function handle(req: IncomingMessage, res: ServerResponse, path: ResourcePath, url: URL): Promise<void> {
    const params = url.searchParams;
    const accept = req.headers.accept ?? '';
    const method = req.method ?? 'GET';
    const { def } = path;
    if (path.subresource !== '' && path.subresource !== 'status') throw notFoundRoute();
    // Namespaced resources: a named object needs its namespace in the path.
    if (def.namespaced && path.namespace === '' && (path.name !== '' || method !== 'GET')) throw notFoundRoute();
    if (method !== 'GET' && params.has('dryRun')) throw badRequest('dryRun is not supported by the Kubernetes API stand-in');
    const mode: UpdateMode = path.subresource === 'status' ? 'status' : 'main';
    if (path.name === '') {
      if (method === 'GET') return isTrue(params.get('watch')) ? watch(deps, { path, params, accept, res }) : list(store, { path, params, accept, res });
      if (method === 'POST') return sendJson(res, 201, store.create(def, path.namespace, parseJson(await readBody(req))));
      if (method === 'DELETE') return deleteCollection(store, { path, params, accept, res });
      throw methodNotAllowed(`the server does not allow this method on the requested resource`);
    }
    switch (method) {
      case 'GET':
        return get(store, { path, params, accept, res });
      case 'PUT':
        return sendJson(res, 200, store.update(def, path.namespace, path.name, { input: parseJson(await readBody(req)), mode }));
      case 'PATCH': {
        const body = await readBody(req);
        const current = store.get(def, path.namespace, path.name);
        if (current === undefined) throw notFound(def, path.name);
        const patched = applyPatch(req.headers['content-type'] ?? '', current, body);
        return sendJson(res, 200, store.update(def, path.namespace, path.name, { input: patched, mode }));
      }
      case 'DELETE':
        return sendJson(res, 200, store.delete(def, path.namespace, path.name, preconditionOf(await readBody(req))));
      default:
        throw methodNotAllowed(`the server does not allow this method on the requested resource`);
    }
  };
}
