// A small Kubernetes API client for what mirra does: GET (read, list), JSON
// merge patch, and watch streams. It speaks plain node:http(s) with one
// keep-alive agent. @kubernetes/client-node did the same at about 70 MiB of
// resident memory per agent, over a quarter of the agent's memory limit.
// Every response body is consumed or destroyed; every call takes an AbortSignal.
// How a request is authenticated is a transport's business: the agent's own
// (an ApiTarget: token, token file, exec plugin, client certificate), or
// another one's (`mirra shards` hands it @kubernetes/client-node's, for the
// kubeconfigs people have on their laptops: internal/inspect/client-node.ts).
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Credentials } from './credentials.ts';
import { errorMessage } from '../errors/message.ts';

export interface ApiTarget {
  /** The API server URL; a path prefix (behind a proxy) is kept. */
  readonly server: string;
  readonly ca: Buffer | undefined;
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
  readonly insecureSkipTlsVerify: boolean;
  readonly tlsServerName: string | undefined;
  readonly credentials: Credentials;
}

export type Query = Readonly<Record<string, string | number | boolean | undefined>>;

export interface WatchEvent {
  /** ADDED, MODIFIED, DELETED, BOOKMARK or ERROR. */
  readonly type: string;
  readonly object: unknown;
}

/** What reading needs (`mirra shards` and `mirra locate` only read). */
export interface KubeReader {
  readonly server: string;
  /** GET; resolves the JSON body, rejects with KubeApiError for an HTTP error, KubeCredentialsError when it could not be authenticated. */
  get(path: string, query: Query, signal: AbortSignal): Promise<unknown>;
  /** Closes idle keep-alive connections. */
  close(): void;
}

export interface KubeClient extends KubeReader {
  /** PATCH with application/merge-patch+json; resolves the object as the API stored it. */
  mergePatch(path: string, body: unknown, signal: AbortSignal): Promise<unknown>;
  /**
   * GET ?watch=true and one call of onEvent per event. Resolves when the
   * server ends the stream; rejects with KubeApiError (an HTTP error), with
   * an error named TimeoutError when no byte came for idleTimeoutMs, or with
   * the stream's error (reset, abort).
   */
  watch(path: string, query: Query, onEvent: (event: WatchEvent) => void, options: { signal: AbortSignal; idleTimeoutMs: number }): Promise<void>;
}

/** The agent and the authentication headers of one request. */
export interface RequestAccess {
  readonly agent: HttpAgent;
  readonly headers: OutgoingHttpHeaders;
}

/** How the requests of one client reach its API server and prove who sends them. */
export interface ApiTransport {
  /** The API server URL; a path prefix (behind a proxy) is kept. */
  readonly server: string;
  /** Before each request: the agent to send it with (TLS, keep-alive, a proxy) and its headers (a renewed token once one expired). */
  access(): Promise<RequestAccess>;
  /** The API answered 401: a cached token is dropped. */
  unauthorized(): void;
  /** Closes idle keep-alive connections. */
  close(): void;
}

/** The API answered with an HTTP error; `body` is the parsed Status when there is one. */
export class KubeApiError extends Error {
  override name = 'KubeApiError';
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: unknown;

  constructor(status: number, headers: IncomingHttpHeaders, body: unknown) {
    const message = body !== null && typeof body === 'object' && 'message' in body && typeof body.message === 'string' ? body.message : '';
    super(`HTTP ${status}${message === '' ? '' : `: ${message}`}`);
    this.status = status;
    this.headers = headers;
    this.body = body;
  }
}

/** The request was not sent: its credentials could not be had (a token file, an exec plugin, an OIDC refresh); the message says why. */
export class KubeCredentialsError extends Error {
  override name = 'KubeCredentialsError';
}

const USER_AGENT = 'mirra';
/** One watch event at most (the API stores objects up to about 1.5 MiB); beyond, the stream is given up. */
const MAX_WATCH_EVENT_CHARS = 8 * 1024 * 1024;

function readBody(res: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.once('end', () => resolve(Buffer.concat(chunks)));
    res.once('error', reject);
    res.once('close', () => {
      if (!res.complete) reject(new Error('the API closed the connection before the end of the body'));
    });
  });
}

function parseJson(body: Buffer, what: string): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new Error(`the API answered ${what} with a body that is not JSON`);
  }
}

async function failure(res: IncomingMessage): Promise<KubeApiError> {
  const body = await readBody(res).catch(() => Buffer.alloc(0));
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    parsed = body.toString('utf8').slice(0, 200);
  }
  return new KubeApiError(res.statusCode ?? 0, res.headers, parsed);
}

function timeoutError(what: 'answered' | 'sent', ms: number): Error {
  const err = new Error(what === 'answered' ? `the API did not answer the watch within ${ms} ms` : `the watch sent nothing for ${ms} ms`);
  err.name = 'TimeoutError';
  return err;
}

/** What every request of one client shares: the transport and the server URL's parts. */
interface Connection {
  readonly transport: ApiTransport;
  readonly base: URL;
  /** The server URL's path, without a trailing slash: prepended to every API path. */
  readonly prefix: string;
  readonly send: typeof httpsRequest | typeof httpRequest;
}

interface RequestBody {
  readonly type: string;
  readonly data: Buffer;
}

/** One request: headersTimeoutMs bounds the wait for the status line (a watch's signal cannot carry a timeout: it lasts). */
interface RequestSpec {
  readonly method: string;
  readonly url: URL;
  readonly signal: AbortSignal;
  readonly body?: RequestBody;
  readonly headersTimeoutMs?: number;
}

/** The agent's own transport: one keep-alive agent with the target's TLS settings, its credentials' Authorization header. */
function targetTransport(target: ApiTarget): ApiTransport {
  const agent =
    new URL(target.server).protocol === 'https:'
      ? new HttpsAgent({
          keepAlive: true,
          ca: target.ca,
          cert: target.cert,
          key: target.key,
          rejectUnauthorized: !target.insecureSkipTlsVerify,
          servername: target.tlsServerName,
        })
      : new HttpAgent({ keepAlive: true });
  return {
    server: target.server,
    async access() {
      const authorization = await target.credentials.authorization();
      return { agent, headers: authorization === undefined ? {} : { Authorization: authorization } };
    },
    unauthorized: () => target.credentials.invalidate(),
    close: () => agent.destroy(),
  };
}

function connect(transport: ApiTransport): Connection {
  const base = new URL(transport.server);
  const prefix = base.pathname.replace(/\/+$/, '');
  return { transport, base, prefix, send: base.protocol === 'https:' ? httpsRequest : httpRequest };
}

function urlOf(conn: Connection, path: string, query: Query): URL {
  const url = new URL(conn.base);
  url.pathname = `${conn.prefix}${path}`;
  for (const [name, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(name, String(value));
  return url;
}

/** The transport's agent and the request's headers; rejects with KubeCredentialsError when the transport cannot authenticate it. */
async function requestAccess(conn: Connection, body: RequestBody | undefined): Promise<RequestAccess> {
  let access: RequestAccess;
  try {
    access = await conn.transport.access();
  } catch (err) {
    // The same message and cause as the error itself: describeError() logs them as before.
    throw new KubeCredentialsError(errorMessage(err), { cause: err instanceof Error ? err.cause : undefined });
  }
  const headers: OutgoingHttpHeaders = { Accept: 'application/json', 'User-Agent': USER_AGENT, ...access.headers };
  if (body !== undefined) Object.assign(headers, { 'Content-Type': body.type, 'Content-Length': body.data.length });
  return { agent: access.agent, headers };
}

/** Sends the request and resolves the response as soon as its status line came, whatever the status. */
function exchange(conn: Connection, spec: RequestSpec, access: RequestAccess): Promise<IncomingMessage> {
  const { method, url, signal, body, headersTimeoutMs } = spec;
  return new Promise<IncomingMessage>((resolve, reject) => {
    const req = conn.send(url, { method, agent: access.agent, headers: access.headers, signal }, (answer) => {
      clearTimeout(timer);
      resolve(answer);
    });
    const timer = headersTimeoutMs === undefined ? undefined : setTimeout(() => req.destroy(timeoutError('answered', headersTimeoutMs)), headersTimeoutMs);
    timer?.unref();
    req.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(body?.data);
  });
}

/**
 * Sends one request; resolves the response of a 2xx, rejects with
 * KubeApiError otherwise (body consumed).
 */
async function call(conn: Connection, spec: RequestSpec): Promise<IncomingMessage> {
  const res = await exchange(conn, spec, await requestAccess(conn, spec.body));
  const status = res.statusCode ?? 0;
  if (status >= 200 && status < 300) return res;
  if (status === 401) conn.transport.unauthorized();
  throw await failure(res);
}

async function json(conn: Connection, spec: RequestSpec): Promise<unknown> {
  const res = await call(conn, spec);
  return parseJson(await readBody(res), `${spec.method} ${spec.url.pathname}`);
}

/** One watch stream being read: its newline-delimited events, the idle timer and how the stream ends. */
interface WatchStream {
  readonly res: IncomingMessage;
  readonly signal: AbortSignal;
  readonly idleTimeoutMs: number;
  readonly onEvent: (event: WatchEvent) => void;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
  /** Text after the last newline: the start of the next event. */
  pending: string;
  timer: NodeJS.Timeout | undefined;
}

function failStream(stream: WatchStream, err: Error): void {
  clearTimeout(stream.timer);
  stream.res.destroy(err);
  stream.reject(stream.signal.aborted ? stream.signal.reason : err); // aborted: the caller's reason, not the socket's "aborted"
}

/** (Re)starts the idle timer: no byte for idleTimeoutMs fails the stream. */
function armStream(stream: WatchStream): void {
  clearTimeout(stream.timer);
  stream.timer = setTimeout(() => failStream(stream, timeoutError('sent', stream.idleTimeoutMs)), stream.idleTimeoutMs);
  stream.timer.unref();
}

/** Hands one line of the stream to onEvent (blank lines skipped); throws for a line that is no event, or what onEvent threw. */
function streamLine(stream: WatchStream, text: string): void {
  if (text.trim() === '') return;
  let event: unknown;
  try {
    event = JSON.parse(text);
  } catch {
    throw new Error('the API sent a watch event that is not JSON');
  }
  if (event === null || typeof event !== 'object' || !('type' in event) || typeof event.type !== 'string' || !('object' in event)) {
    throw new Error('the API sent a watch event without type and object');
  }
  stream.onEvent({ type: event.type, object: event.object });
}

function onStreamData(stream: WatchStream, chunk: string): void {
  armStream(stream);
  stream.pending += chunk;
  const { pending } = stream;
  let start = 0;
  try {
    for (let end = pending.indexOf('\n'); end >= 0; end = pending.indexOf('\n', start)) {
      streamLine(stream, pending.slice(start, end));
      start = end + 1;
    }
  } catch (err) {
    failStream(stream, err instanceof Error ? err : new Error(String(err)));
    return;
  }
  stream.pending = pending.slice(start);
  if (stream.pending.length > MAX_WATCH_EVENT_CHARS) failStream(stream, new Error(`the API sent a watch event over ${MAX_WATCH_EVENT_CHARS} characters`));
}

function onStreamEnd(stream: WatchStream): void {
  clearTimeout(stream.timer);
  try {
    streamLine(stream, stream.pending);
    stream.resolve();
  } catch (err) {
    stream.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

/** Reads a watch response to its end: resolves when the server ends it, rejects as KubeClient.watch says. */
function readWatch(res: IncomingMessage, onEvent: (event: WatchEvent) => void, options: { signal: AbortSignal; idleTimeoutMs: number }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const stream: WatchStream = { res, signal: options.signal, idleTimeoutMs: options.idleTimeoutMs, onEvent, resolve, reject, pending: '', timer: undefined };
    armStream(stream);
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => onStreamData(stream, chunk));
    res.once('end', () => onStreamEnd(stream));
    res.once('error', (err) => failStream(stream, err));
    res.once('close', () => {
      if (!res.complete) failStream(stream, new Error('the API closed the watch connection'));
    });
  });
}

export function createKubeClient(target: ApiTarget): KubeClient {
  return createKubeClientOver(targetTransport(target));
}

/** A client whose requests go through `transport` (createKubeClient's for an ApiTarget, or the CLI's over client-node). */
export function createKubeClientOver(transport: ApiTransport): KubeClient {
  const conn = connect(transport);
  return {
    server: transport.server,
    get: (path, query, signal) => json(conn, { method: 'GET', url: urlOf(conn, path, query), signal }),
    mergePatch: (path, body, signal) =>
      json(conn, {
        method: 'PATCH',
        url: urlOf(conn, path, {}),
        signal,
        body: { type: 'application/merge-patch+json', data: Buffer.from(JSON.stringify(body)) },
      }),
    async watch(path, query, onEvent, options) {
      const url = urlOf(conn, path, { ...query, watch: true });
      const res = await call(conn, { method: 'GET', url, signal: options.signal, headersTimeoutMs: options.idleTimeoutMs });
      await readWatch(res, onEvent, options);
    },
    close: () => transport.close(),
  };
}
