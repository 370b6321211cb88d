// Authorization in the stand-in (optional, with `auth.authorize`): each
// resource request's attributes as kube-apiserver's RequestInfo names them
// (verb, group, resource, subresource, namespace, name), asked of the test,
// and the real 403 Forbidden Status when it says no. Non-resource paths
// (discovery, /version, health) are always allowed, as the default
// system:discovery bindings allow them.
import type { IncomingMessage } from 'node:http';
import { parsePodProxyPath } from './proxy.ts';
import { parsePath } from './resources.ts';
import { ApiError, failure, type StatusDetails } from './status.ts';

/** What RBAC decides on. */
export interface RequestAttributes {
  /** The authenticated user as the stand-in records it: `token:<first 8 chars>` or `cert:<CN>`. */
  user: string;
  /** get, list, watch, create, update, patch, delete, deletecollection. */
  verb: string;
  group: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
}

const PROXY_VERBS: Record<string, string> = { GET: 'get', HEAD: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete', OPTIONS: 'get' };

function collectionVerb(method: string, url: URL): string {
  const watch = url.searchParams.get('watch');
  if (method === 'GET') return watch === 'true' || watch === '1' ? 'watch' : 'list';
  return method === 'POST' ? 'create' : method === 'DELETE' ? 'deletecollection' : method.toLowerCase();
}

function objectVerb(method: string): string {
  return { GET: 'get', HEAD: 'get', PUT: 'update', PATCH: 'patch', DELETE: 'delete' }[method] ?? method.toLowerCase();
}

/** The request's attributes; undefined for a non-resource request. */
export function requestAttributes(req: IncomingMessage, url: URL, user: string): RequestAttributes | undefined {
  const method = req.method ?? 'GET';
  const proxy = parsePodProxyPath(url.pathname);
  if (proxy !== undefined) {
    const name = proxy.id.split(':').length === 3 ? (proxy.id.split(':')[1] ?? '') : (proxy.id.split(':')[0] ?? '');
    return { user, verb: PROXY_VERBS[method] ?? 'get', group: '', resource: 'pods', subresource: 'proxy', namespace: proxy.namespace, name };
  }
  const parsed = parsePath(url.pathname);
  if (parsed.type !== 'resource') return undefined;
  const { def, namespace, name, subresource } = parsed.path;
  const verb = name === '' ? collectionVerb(method, url) : objectVerb(method);
  return { user, verb, group: def.group, resource: def.plural, subresource, namespace, name };
}

/** The real server's 403: `pods is forbidden: User "u" cannot list resource "pods" in API group "" in the namespace "mirra"`. */
export function forbidden(attributes: RequestAttributes): ApiError {
  const { user, verb, group, resource, subresource, namespace, name } = attributes;
  const qualified = group === '' ? resource : `${resource}.${group}`;
  const full = subresource === '' ? resource : `${resource}/${subresource}`;
  const scope = namespace === '' ? 'at the cluster scope' : `in the namespace "${namespace}"`;
  const reason = `User "${user}" cannot ${verb} resource "${full}" in API group "${group}" ${scope}`;
  const details: StatusDetails = { kind: resource };
  if (name !== '') details.name = name;
  if (group !== '') details.group = group;
  return new ApiError(failure(403, 'Forbidden', `${qualified}${name === '' ? '' : ` "${name}"`} is forbidden: ${reason}`, details));
}
