// A Kubernetes API stand-in for tests (never shipped in the agent): an HTTP
// (or HTTPS, with bearer-token / client-certificate authentication) server
// that behaves like kube-apiserver for what mirra and kubectl use.
// See tests/kube/README.md for what it models and where it simplifies.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLogger, type Logger } from '../../internal/log/logger.ts';
import { forbidden, requestAttributes, type RequestAttributes } from './authz.ts';
import { discoveryDocument } from './discovery.ts';
import { createFaults, type FaultControl, type Faults } from './faults.ts';
import { createResourceHandler, isTrue, sendJson, type ResourceHandler } from './handlers.ts';
import { createPodProxy, DEFAULT_PROXY_RESPONSE_TIMEOUT_MS, parsePodProxyPath, type PodProxy } from './proxy.ts';
import { parsePath, RESOURCES, type ResourceDef } from './resources.ts';
import { ApiError, failure } from './status.ts';
import { createStore, type KubeObject, type Store } from './store.ts';
import { createWatchRegistry } from './watch.ts';

export interface KubeApiOptions {
  host?: string;
  /** 0 picks a free port; restart() reuses the port that was picked. */
  port?: number;
  /** How many events the watch history keeps; a watch from an older resourceVersion gets 410 Gone. */
  historySize?: number;
  /** How often a watch with allowWatchBookmarks=true gets a BOOKMARK (the real server: about a minute). */
  bookmarkIntervalMs?: number;
  log?: Logger;
  /** Serve https with this certificate instead of plain http. */
  tls?: KubeApiTls;
  /** Check every request but the health checks; without it nothing is checked. */
  auth?: KubeApiAuth;
  /** How long a pods/proxy request waits for the pod's response headers before its 503 (default 30 s). */
  proxyResponseTimeoutMs?: number;
}

/** PEM strings. */
export interface KubeApiTls {
  cert: string;
  key: string;
  /** The CA that signed cert: written to the kubeconfig as certificate-authority-data. Without it the kubeconfig skips verification. */
  ca?: string;
  /** Ask for client certificates and trust the ones this CA signed (kube-apiserver's --client-ca-file). */
  clientCa?: string;
}

export interface KubeApiAuth {
  /** The bearer tokens accepted; asked on every request, so a test can rotate them. */
  tokens(): readonly string[];
  /** RBAC: whether the authenticated user may do this (resource requests only); false answers the real 403 Forbidden. Default: anything. */
  authorize?(attributes: RequestAttributes): boolean;
}

/** The kubeconfig user: a token, a token file, or a client certificate as file paths or PEM. */
export type KubeconfigUser =
  { token: string } | { tokenFile: string } | { clientCertificate: string; clientKey: string } | { clientCertificateData: string; clientKeyData: string };

export interface RequestRecord {
  method: string;
  /** Path and query, as sent. */
  url: string;
  /** 0 until the answer has been sent completely (an open watch stays 0). */
  status: number;
  /** Who authenticated it when auth is on: `token:<first 8 chars>` or `cert:<CN>`; undefined if nobody (or auth is off). */
  user?: string;
  /** The Impersonate-User and Impersonate-Group headers it carried, if any (recorded only: nothing is impersonated). */
  impersonate?: { user: string; groups: string[] };
}

export interface KubeApi {
  readonly url: string;
  readonly port: number;
  /**
   * Writes a kubeconfig (namespace default) for kubectl and client-node: plain http with insecure-skip-tls-verify,
   * or with tls the certificate-authority-data of tls.ca. The user defaults to { token: 'stand-in-token' }.
   */
  writeKubeconfig(path: string, user?: KubeconfigUser): Promise<void>;
  /** writeKubeconfig(dir/kubeconfig, user); returns that path. */
  kubeconfigPath(dir: string, user?: KubeconfigUser): Promise<string>;
  /** Closes the listener and every connection (watches included); the data stays. */
  stop(): Promise<void>;
  /** Listens again on the same port with the same data; clearHistory forgets the watch history, as a fresh watch cache does. */
  restart(options?: { clearHistory?: boolean }): Promise<void>;
  /** Ends every open watch stream abruptly. */
  dropWatches(): void;
  openWatches(): number;
  /** How many watches were answered with the 410 Expired ERROR event so far. */
  expiredWatches(): number;
  readonly faults: Faults;
  /** The requests received so far, in order of arrival (the last 10,000). */
  requests(): RequestRecord[];
  /** Direct store access for tests (no HTTP): status is taken as given. */
  readonly store: Store;
  create(obj: unknown): KubeObject;
  get(kind: string, namespace: string, name: string): KubeObject | undefined;
  list(kind: string, namespace?: string): KubeObject[];
  update(obj: unknown): KubeObject;
  delete(kind: string, namespace: string, name: string): KubeObject;
}

const MAX_REQUEST_RECORDS = 10_000;
const HEALTH_PATHS = ['/healthz', '/livez', '/readyz'];
const DEFAULT_USER: KubeconfigUser = { token: 'stand-in-token' };

function defForKind(kind: string): ResourceDef {
  const def = RESOURCES.find((r) => r.kind === kind);
  if (def === undefined) throw new Error(`the stand-in does not serve kind ${JSON.stringify(kind)}`);
  return def;
}

/** The kubeconfig fields of a user (file paths as given, PEM as base64 data). */
function kubeconfigUser(user: KubeconfigUser): Record<string, string> {
  if ('token' in user) return { token: user.token };
  if ('tokenFile' in user) return { tokenFile: user.tokenFile };
  if ('clientCertificate' in user) return { 'client-certificate': user.clientCertificate, 'client-key': user.clientKey };
  const base64 = (pem: string): string => Buffer.from(pem).toString('base64');
  return { 'client-certificate-data': base64(user.clientCertificateData), 'client-key-data': base64(user.clientKeyData) };
}

function kubeconfigCluster(url: string, tls: KubeApiTls | undefined): Record<string, unknown> {
  // client-node 2.x refuses plain http unless insecure-skip-tls-verify is set; kubectl ignores it for http.
  if (tls?.ca === undefined) return { server: url, 'insecure-skip-tls-verify': true };
  return { server: url, 'certificate-authority-data': Buffer.from(tls.ca).toString('base64') };
}

/** The identity a request proves, checked as kube-apiserver's authenticators are: client certificate first, then bearer token. */
function identify(req: IncomingMessage, auth: KubeApiAuth): string | undefined {
  const socket = req.socket;
  // authorized is true only for a certificate that verified against tls.clientCa (rejectUnauthorized is off).
  if (socket instanceof TLSSocket && socket.authorized) {
    const cn = socket.getPeerCertificate().subject?.CN;
    if (cn !== undefined) return `cert:${Array.isArray(cn) ? cn.join(',') : cn}`;
  }
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  const token = match?.[1];
  if (token !== undefined && auth.tokens().includes(token)) return `token:${token.slice(0, 8)}`;
  return undefined;
}

function createListener(tls: KubeApiTls | undefined, onRequest: (req: IncomingMessage, res: ServerResponse) => void): Server {
  if (tls === undefined) return createServer(onRequest);
  const clientCerts = tls.clientCa === undefined ? {} : { ca: tls.clientCa, requestCert: true, rejectUnauthorized: false };
  return createHttpsServer({ cert: tls.cert, key: tls.key, ...clientCerts }, onRequest);
}

/** A metadata field as a string: `fallback` when it is missing, JSON when it is not a string. */
function metadataText(value: unknown, fallback: string): string {
  if (value === undefined || value === null) return fallback;
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function describe(obj: unknown): { def: ResourceDef; namespace: string; name: string } {
  if (obj === null || typeof obj !== 'object') throw new Error('expected an object with kind and metadata');
  const record = obj as Record<string, unknown>;
  const def = defForKind(String(record['kind']));
  const metadata = (record['metadata'] ?? {}) as Record<string, unknown>;
  const namespace = def.namespaced ? metadataText(metadata['namespace'], 'default') : '';
  return { def, namespace, name: metadataText(metadata['name'], '') };
}

/** The stand-in's parts: its options, its store and watches, its listener, what it has seen. */
interface KubeApiState {
  readonly options: KubeApiOptions;
  readonly host: string;
  /** The port asked for, then (once listening) the one picked. */
  port: number;
  readonly log: Logger;
  readonly faults: FaultControl;
  readonly handleResource: ResourceHandler;
  readonly proxyToPod: PodProxy;
  readonly server: Server;
  readonly sockets: Set<Socket>;
  readonly records: RequestRecord[];
}

async function route(state: KubeApiState, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  if (HEALTH_PATHS.includes(url.pathname)) {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' }).end('ok');
    return;
  }
  const proxyPath = parsePodProxyPath(url.pathname);
  if (proxyPath !== undefined) return state.proxyToPod(req, res, proxyPath, url);
  const parsed = parsePath(url.pathname);
  if (parsed.type === 'resource') return state.handleResource(req, res, parsed.path, url);
  const doc = req.method === 'GET' ? discoveryDocument(url.pathname, `${state.host}:${state.port}`) : undefined;
  if (doc !== undefined) return sendJson(res, 200, doc);
  throw new ApiError(failure(404, 'NotFound', 'the server could not find the requested resource', {}));
}

async function onRequest(state: KubeApiState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { options, records } = state;
  const record: RequestRecord = { method: req.method ?? '', url: req.url ?? '', status: 0 };
  records.push(record);
  if (records.length > MAX_REQUEST_RECORDS) records.shift();
  res.once('finish', () => (record.status = res.statusCode));
  const impersonated = req.headers['impersonate-user'];
  if (typeof impersonated === 'string') record.impersonate = { user: impersonated, groups: req.headersDistinct['impersonate-group'] ?? [] };
  try {
    const url = new URL(req.url ?? '/', 'http://stand-in');
    if (options.auth !== undefined) {
      record.user = identify(req, options.auth);
      // Authentication comes before everything else on the real server, injected faults (429, 500) included.
      if (record.user === undefined && !HEALTH_PATHS.includes(url.pathname)) throw new ApiError(failure(401, 'Unauthorized', 'Unauthorized'));
      // Authorization comes next, before the max-in-flight filter (the injected 429s).
      const attributes = record.user === undefined ? undefined : requestAttributes(req, url, record.user);
      if (attributes !== undefined && options.auth.authorize?.(attributes) === false) throw forbidden(attributes);
    }
    if (await state.faults.apply(res)) return;
    if (req.method === 'GET' && isTrue(url.searchParams.get('watch')) && state.faults.applyToWatch(res)) return;
    await route(state, req, res, url);
  } catch (err) {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof ApiError) {
      if (err.status.code === 413) res.setHeader('Connection', 'close'); // the rest of the body is not read
      return sendJson(res, err.status.code, err.status);
    }
    state.log.warn({ err, method: req.method, url: req.url }, 'stand-in request failed');
    sendJson(res, 500, failure(500, 'InternalError', `Internal error occurred: ${(err as Error).message}`));
  }
}

function listen(state: KubeApiState): Promise<void> {
  const { server } = state;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(state.port, state.host, () => {
      server.off('error', reject);
      const address = server.address();
      if (address !== null && typeof address === 'object') state.port = address.port;
      resolve();
    });
  });
}

async function writeKubeconfig(url: string, tls: KubeApiTls | undefined, path: string, user: KubeconfigUser = DEFAULT_USER): Promise<void> {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'stand-in', cluster: kubeconfigCluster(url, tls) }],
    users: [{ name: 'stand-in', user: kubeconfigUser(user) }],
    contexts: [{ name: 'stand-in', context: { cluster: 'stand-in', user: 'stand-in', namespace: 'default' } }],
    'current-context': 'stand-in',
    preferences: {},
  };
  await writeFile(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
}

export async function startKubeApi(options: KubeApiOptions = {}): Promise<KubeApi> {
  const log = (options.log ?? createLogger('warn', process.stderr)).child({ component: 'kube-stand-in' });
  const store = createStore(options.historySize ?? 1000);
  const watches = createWatchRegistry(store);
  const faults = createFaults();
  const handleResource = createResourceHandler({ store, watches, bookmarkIntervalMs: options.bookmarkIntervalMs ?? 5000 });
  const proxyToPod = createPodProxy({ store, responseTimeoutMs: options.proxyResponseTimeoutMs ?? DEFAULT_PROXY_RESPONSE_TIMEOUT_MS });
  const server = createListener(options.tls, (req, res) => void onRequest(state, req, res));
  const state: KubeApiState = {
    options,
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    log,
    faults,
    handleResource,
    proxyToPod,
    server,
    sockets: new Set(),
    records: [],
  };
  const { sockets, records } = state;
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  await listen(state);
  const port = state.port;
  const url = `${options.tls === undefined ? 'http' : 'https'}://${state.host}:${port}`;
  const writeConfig = (path: string, user?: KubeconfigUser): Promise<void> => writeKubeconfig(url, options.tls, path, user);

  return {
    url,
    port,
    writeKubeconfig: writeConfig,
    async kubeconfigPath(dir, user) {
      const path = join(dir, 'kubeconfig');
      await writeConfig(path, user);
      return path;
    },
    async stop() {
      if (!server.listening) return;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      watches.dropAll();
      for (const socket of sockets) socket.destroy();
      await closed;
    },
    async restart(restartOptions = {}) {
      if (server.listening) throw new Error('restart: the stand-in is still running; stop() it first');
      if (restartOptions.clearHistory === true) store.clearHistory();
      await listen(state);
    },
    dropWatches: () => watches.dropAll(),
    openWatches: () => watches.openCount(),
    expiredWatches: () => watches.expiredCount(),
    faults,
    requests: () => records.map((r) => ({ ...r })),
    store,
    create(obj) {
      const { def, namespace } = describe(obj);
      return store.create(def, namespace, obj);
    },
    get: (kind, namespace, name) => store.get(defForKind(kind), namespace, name),
    list: (kind, namespace = '') => store.list(defForKind(kind), namespace),
    update(obj) {
      const { def, namespace, name } = describe(obj);
      return store.update(def, namespace, name, { input: obj, mode: 'all' });
    },
    delete: (kind, namespace, name) => store.delete(defForKind(kind), namespace, name),
  };
}
