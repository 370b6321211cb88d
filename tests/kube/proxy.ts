// The pods/proxy subresource, so that a test can reach a pod's HTTP port (an
// agent served by a local node:http server) through the stand-in the way a CLI
// reaches it through a real API server:
//   {GET,HEAD,POST,PUT,PATCH,DELETE,OPTIONS}
//   /api/v1/namespaces/<ns>/pods/[http:]<name>[:<port>]/proxy[/<path>][?<query>]
// The pod's address is found as kube-apiserver's ResourceLocation
// (pkg/registry/core/pod/strategy.go) finds it, and the request is forwarded as
// apimachinery's UpgradeAwareHandler and proxy.Transport forward it, streamed
// both ways. See tests/kube/README.md ("Pod proxy") for where it simplifies.
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { resourceByPlural, type ResourceDef } from './resources.ts';
import { ApiError, badRequest, failure, methodNotAllowed, notFound } from './status.ts';
import type { KubeObject, Store } from './store.ts';

/** How long the pod may take to send its response headers (the real server has no such limit: a safety net for tests). */
export const DEFAULT_PROXY_RESPONSE_TIMEOUT_MS = 30_000;

/** The verbs the real server routes to the proxy subresource. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
const PROXY_PATH = /^(\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/proxy)(\/.*)?$/;
/** Go's httputil.ReverseProxy drops these in both directions (and whatever the Connection header names). */
const HOP_BY_HOP = [
  'connection',
  'proxy-connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
];
/** The real server's corsRemovingTransport strips these from the pod's answer. */
const CORS = ['access-control-allow-credentials', 'access-control-allow-headers', 'access-control-allow-methods', 'access-control-allow-origin'];
/** The real server dials <ip>:<port> as given, so a port name goes to Go's resolver (these two it knows without /etc/services). */
const SERVICE_PORTS = new Map([
  ['http', 80],
  ['https', 443],
]);

/**
 * ip.IsGlobalUnicast() is false for these and the real server refuses them. It refuses loopback too, which the
 * stand-in allows on purpose: its tests' pods are node:http servers on 127.0.0.1.
 */
const NOT_GLOBAL_UNICAST = new BlockList();
NOT_GLOBAL_UNICAST.addAddress('0.0.0.0', 'ipv4');
NOT_GLOBAL_UNICAST.addAddress('255.255.255.255', 'ipv4');
NOT_GLOBAL_UNICAST.addSubnet('224.0.0.0', 4, 'ipv4');
NOT_GLOBAL_UNICAST.addSubnet('169.254.0.0', 16, 'ipv4');
NOT_GLOBAL_UNICAST.addAddress('::', 'ipv6');
NOT_GLOBAL_UNICAST.addSubnet('ff00::', 8, 'ipv6');
NOT_GLOBAL_UNICAST.addSubnet('fe80::', 10, 'ipv6');

export interface PodProxyPath {
  namespace: string;
  /** `<name>`, `<name>:<port>` or `<scheme>:<name>:<port>`, decoded. */
  id: string;
  /** The API path up to and including `/proxy`, as sent. */
  prefix: string;
  /** The pod's path after `/proxy`, as sent (percent-encoding kept); '' when the request ended at `/proxy`. */
  subpath: string;
}

/** A pods/proxy path, or undefined for any other path. */
export function parsePodProxyPath(pathname: string): PodProxyPath | undefined {
  const match = PROXY_PATH.exec(pathname);
  if (match === null) return undefined;
  try {
    return { namespace: decodeURIComponent(match[2] ?? ''), id: decodeURIComponent(match[3] ?? ''), prefix: match[1] ?? '', subpath: match[4] ?? '' };
  } catch {
    return undefined; // malformed percent-encoding: no such resource
  }
}

function record(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function unreachable(detail: string): ApiError {
  return new ApiError(failure(503, 'ServiceUnavailable', `error trying to reach service: ${detail}`));
}

/** utilnet.SplitSchemeNamePort: `name`, `name:port` or `scheme:name:port`, the scheme http or https. */
function splitId(id: string): { scheme: string; name: string; port: string } {
  const parts = id.split(':');
  const [first = '', second = '', third = ''] = parts;
  const split = parts.length === 3 ? { scheme: first, name: second, port: third } : { scheme: '', name: first, port: second };
  if (parts.length > 3 || split.name === '' || !['', 'http', 'https'].includes(split.scheme)) throw badRequest(`invalid pod request ${JSON.stringify(id)}`);
  return split;
}

/** status.podIP, else status.podIPs[0].ip (podIP wins when both are set, as in the v1 conversion). */
function podIp(pod: KubeObject): string {
  const status = record(pod['status']);
  const ip = status?.['podIP'];
  if (typeof ip === 'string' && ip !== '') return ip;
  const ips = status?.['podIPs'];
  const first = Array.isArray(ips) ? record(ips[0])?.['ip'] : undefined;
  return typeof first === 'string' ? first : '';
}

function proxyable(ip: string): boolean {
  const family = isIP(ip);
  return family !== 0 && !NOT_GLOBAL_UNICAST.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

/** The first port of the first container that declares one, '' when none does. */
function firstContainerPort(pod: KubeObject): string {
  const containers = record(pod['spec'])?.['containers'];
  if (!Array.isArray(containers)) return '';
  for (const container of containers) {
    const ports = record(container)?.['ports'];
    if (!Array.isArray(ports) || ports.length === 0) continue;
    const port = record(ports[0])?.['containerPort'];
    return typeof port === 'number' ? String(port) : '0';
  }
  return '';
}

/** The port dialled: 80 without one, a number as given, a name only if the resolver knows it (never the pod's port names). */
function dialPort(port: string): number {
  if (port === '') return 80;
  if (/^\d+$/.test(port)) {
    const number = Number(port);
    if (number >= 1 && number <= 65535) return number;
    throw unreachable(`dial tcp: address ${port}: invalid port`);
  }
  const known = SERVICE_PORTS.get(port);
  if (known === undefined) throw unreachable(`dial tcp: lookup tcp/${port}: unknown port`);
  return known;
}

interface PodLocation {
  ip: string;
  port: string;
}

/** ResourceLocation: 400 for a bad id, 404 for a missing pod, 400 "address not allowed" for a pod without a usable IP. */
function locate(store: Store, pods: ResourceDef, path: PodProxyPath): PodLocation {
  const { scheme, name, port } = splitId(path.id);
  const pod = store.get(pods, path.namespace, name);
  if (pod === undefined) throw notFound(pods, name);
  const ip = podIp(pod);
  if (!proxyable(ip)) throw badRequest('address not allowed');
  if (scheme === 'https') throw badRequest('https: pod proxy over TLS is not supported by the Kubernetes API stand-in');
  return { ip, port: port === '' ? firstContainerPort(pod) : port };
}

function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Pairs of raw headers without the hop-by-hop ones, those the Connection header names, and `extra`. */
function withoutHeaders(message: IncomingMessage, extra: readonly string[]): string[] {
  const named = (message.headers.connection ?? '').split(',').map((token) => token.trim().toLowerCase());
  const drop = new Set([...HOP_BY_HOP, ...named, ...extra]);
  const out: string[] = [];
  for (let i = 0; i + 1 < message.rawHeaders.length; i += 2) {
    const name = message.rawHeaders[i] ?? '';
    if (!drop.has(name.toLowerCase())) out.push(name, message.rawHeaders[i + 1] ?? '');
  }
  return out;
}

/**
 * What the pod is sent: the caller's headers (Host included) without the hop-by-hop ones and without Authorization,
 * which the real server's authentication filter removes; X-Forwarded-For and X-Forwarded-Uri as the real proxy sets them.
 */
function requestHeaders(req: IncomingMessage, pathname: string): string[] {
  const headers = withoutHeaders(req, ['authorization', 'x-forwarded-for', 'x-forwarded-uri']);
  // A body of unknown length goes on chunked (Go's transport does that for every method; node only by default for some).
  if (req.headers['transfer-encoding'] !== undefined && req.headers['content-length'] === undefined) headers.push('Transfer-Encoding', 'chunked');
  const given = req.headers['x-forwarded-for'];
  const prior = Array.isArray(given) ? given.join(', ') : given;
  const client = req.socket.remoteAddress ?? '';
  headers.push('X-Forwarded-For', prior === undefined ? client : `${prior}, ${client}`, 'X-Forwarded-Uri', pathname);
  return headers;
}

/** Where a redirect sends the caller. */
interface RedirectContext {
  /** The API path up to and including /proxy. */
  prefix: string;
  /** `<ip>:<port>` of the pod. */
  podHost: string;
  /** The Host the caller asked the API server for. */
  requestHost: string;
}

/** proxy.Transport's rewriteURL: a redirect to an absolute path on the pod (or on the API server's host) stays behind the proxy path. */
function rewriteLocation(location: string, context: RedirectContext): string {
  const hasOrigin = /^[a-z][a-z\d+.-]*:\/\//i.test(location) || location.startsWith('//');
  if (!hasOrigin && !location.startsWith('/')) return location; // relative: the caller resolves it against the proxy path
  let url: URL;
  try {
    url = new URL(location, 'http://stand-in.invalid');
  } catch {
    return location;
  }
  if (hasOrigin && url.host !== context.podHost && url.host !== context.requestHost) return location;
  const origin = hasOrigin && url.host === context.requestHost ? `${url.protocol}//${url.host}` : '';
  const path = url.pathname.startsWith(context.prefix) ? url.pathname : posix.join(context.prefix, url.pathname);
  return `${origin}${path}${url.search}${url.hash}`;
}

function responseHeaders(upstream: IncomingMessage, context: RedirectContext): string[] {
  const headers = withoutHeaders(upstream, CORS);
  for (let i = 0; i + 1 < headers.length; i += 2) {
    if (headers[i]?.toLowerCase() === 'location') headers[i + 1] = rewriteLocation(headers[i + 1] ?? '', context);
  }
  return headers;
}

/** A failed round trip in the words of Go's net/http, as the real server's 503 quotes it. */
function dialError(err: NodeJS.ErrnoException, address: string): string {
  if (err.code === 'ECONNREFUSED') return `dial tcp ${address}: connect: connection refused`;
  if (err.code === 'EHOSTUNREACH') return `dial tcp ${address}: connect: no route to host`;
  if (err.code === 'ECONNRESET') return err.syscall === 'read' ? `read tcp ${address}: read: connection reset by peer` : 'EOF';
  return err.message;
}

/** One request to the pod. */
interface Forward {
  req: IncomingMessage;
  res: ServerResponse;
  host: string;
  port: number;
  /** Path and query on the pod. */
  path: string;
  headers: string[];
  timeoutMs: number;
}

/** Sends the request (its body streamed) and resolves with the pod's response; rejects with the real server's 503 Status. */
function forward(f: Forward): Promise<IncomingMessage> {
  const { req, res } = f;
  return new Promise((resolve, reject) => {
    // A fresh connection per request (agent: false): nothing lingers after stop(), no stale keep-alive socket is reused.
    const upstream = request({ host: f.host, port: f.port, method: req.method, path: f.path, headers: f.headers, agent: false, setHost: false });
    const timer = setTimeout(() => upstream.destroy(new Error('net/http: timeout awaiting response headers')), f.timeoutMs);
    upstream.once('response', (response) => {
      clearTimeout(timer);
      resolve(response);
    });
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      req.unpipe(upstream);
      req.resume(); // drop the rest of the body so the 503 can be answered
      reject(unreachable(dialError(err, hostPort(f.host, f.port))));
    });
    res.once('close', () => upstream.destroy()); // the caller went away
    req.pipe(upstream);
  });
}

export interface PodProxyDeps {
  store: Store;
  /** See DEFAULT_PROXY_RESPONSE_TIMEOUT_MS. */
  responseTimeoutMs: number;
}

/** Answers one pods/proxy request; errors are thrown as ApiError (before the pod's answer) for the caller to send. */
export type PodProxy = (req: IncomingMessage, res: ServerResponse, path: PodProxyPath, url: URL) => Promise<void>;

export function createPodProxy(deps: PodProxyDeps): PodProxy {
  const pods = resourceByPlural('', 'v1', 'pods');
  if (pods === undefined) throw new Error('the stand-in serves no pods');

  return async function proxy(req, res, path, url): Promise<void> {
    const method = req.method ?? 'GET';
    if (!METHODS.includes(method)) throw methodNotAllowed('the server does not allow this method on the requested resource');
    const { ip, port } = locate(deps.store, pods, path);
    if (path.subpath === '' && (method === 'GET' || method === 'HEAD')) {
      // UpgradeAwareHandler's proxyRedirectsforRootPath: .../proxy answers 301 to .../proxy/.
      res.writeHead(301, { Location: `${url.pathname}/${url.search}`, 'Content-Length': 0 }).end();
      return;
    }
    const dialled = dialPort(port);
    const target = `${path.subpath.replace(/\/{2,}/g, '/') || '/'}${url.search}`;
    const upstream = await forward({
      req,
      res,
      host: ip,
      port: dialled,
      path: target,
      headers: requestHeaders(req, url.pathname),
      timeoutMs: deps.responseTimeoutMs,
    });
    const context = { prefix: path.prefix, podHost: hostPort(ip, dialled), requestHost: req.headers.host ?? '' };
    res.writeHead(upstream.statusCode ?? 502, responseHeaders(upstream, context));
    await pipeline(upstream, res);
  };
}
