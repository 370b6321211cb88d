// A small Kubernetes API client for what mirra does: GET (read, list), JSON
// merge patch, and watch streams. It speaks plain node:http(s) with one
// keep-alive agent. @kubernetes/client-node did the same at about 70 MiB of
// resident memory per agent, over a quarter of the agent's memory limit.
// Every response body is consumed or destroyed; every call takes an AbortSignal.
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Credentials } from './credentials.ts';

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

export interface KubeClient {
  readonly server: string;
  /** GET; resolves the JSON body, rejects with KubeApiError for an HTTP error. */
  get(path: string, query: Query, signal: AbortSignal): Promise<unknown>;
  /** PATCH with application/merge-patch+json; resolves the object as the API stored it. */
  mergePatch(path: string, body: unknown, signal: AbortSignal): Promise<unknown>;
  /**
   * GET ?watch=true and one call of onEvent per event. Resolves when the
   * server ends the stream; rejects with KubeApiError (an HTTP error), with
   * an error named TimeoutError when no byte came for idleTimeoutMs, or with
   * the stream's error (reset, abort).
   */
  watch(path: string, query: Query, onEvent: (event: WatchEvent) => void, options: { signal: AbortSignal; idleTimeoutMs: number }): Promise<void>;
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

export function createKubeClient(target: ApiTarget): KubeClient {
  const base = new URL(target.server);
  const prefix = base.pathname.replace(/\/+$/, '');
  const tls = base.protocol === 'https:';
  const agent = tls
    ? new HttpsAgent({
        keepAlive: true,
        ca: target.ca,
        cert: target.cert,
        key: target.key,
        rejectUnauthorized: !target.insecureSkipTlsVerify,
        servername: target.tlsServerName,
      })
    : new HttpAgent({ keepAlive: true });
  const send = tls ? httpsRequest : httpRequest;

  function urlOf(path: string, query: Query): URL {
    const url = new URL(base);
    url.pathname = `${prefix}${path}`;
    for (const [name, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(name, String(value));
    return url;
  }

  /**
   * Sends one request; resolves the response of a 2xx, rejects with
   * KubeApiError otherwise (body consumed). headersTimeoutMs bounds the wait
   * for the status line (a watch's signal cannot carry a timeout: it lasts).
   */
  async function call(
    method: string,
    url: URL,
    signal: AbortSignal,
    body?: { type: string; data: Buffer },
    headersTimeoutMs?: number,
  ): Promise<IncomingMessage> {
    const authorization = await target.credentials.authorization();
    const headers: Record<string, string | number> = { Accept: 'application/json', 'User-Agent': USER_AGENT };
    if (authorization !== undefined) headers['Authorization'] = authorization;
    if (body !== undefined) Object.assign(headers, { 'Content-Type': body.type, 'Content-Length': body.data.length });
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = send(url, { method, agent, headers, signal }, (answer) => {
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
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return res;
    if (status === 401) target.credentials.invalidate();
    throw await failure(res);
  }

  async function json(method: string, url: URL, signal: AbortSignal, body?: { type: string; data: Buffer }): Promise<unknown> {
    const res = await call(method, url, signal, body);
    return parseJson(await readBody(res), `${method} ${url.pathname}`);
  }

  return {
    server: target.server,
    get: (path, query, signal) => json('GET', urlOf(path, query), signal),
    mergePatch: (path, body, signal) =>
      json('PATCH', urlOf(path, {}), signal, { type: 'application/merge-patch+json', data: Buffer.from(JSON.stringify(body)) }),
    async watch(path, query, onEvent, { signal, idleTimeoutMs }) {
      const res = await call('GET', urlOf(path, { ...query, watch: true }), signal, undefined, idleTimeoutMs);
      await new Promise<void>((resolve, reject) => {
        let pending = '';
        let timer: NodeJS.Timeout | undefined;
        const fail = (err: Error): void => {
          clearTimeout(timer);
          res.destroy(err);
          reject(signal.aborted ? signal.reason : err); // aborted: the caller's reason, not the socket's "aborted"
        };
        const arm = (): void => {
          clearTimeout(timer);
          timer = setTimeout(() => fail(timeoutError('sent', idleTimeoutMs)), idleTimeoutMs);
          timer.unref();
        };
        const line = (text: string): void => {
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
          onEvent({ type: event.type, object: event.object });
        };
        arm();
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          arm();
          pending += chunk;
          let start = 0;
          try {
            for (let end = pending.indexOf('\n'); end >= 0; end = pending.indexOf('\n', start)) {
              line(pending.slice(start, end));
              start = end + 1;
            }
          } catch (err) {
            fail(err instanceof Error ? err : new Error(String(err)));
            return;
          }
          pending = pending.slice(start);
          if (pending.length > MAX_WATCH_EVENT_CHARS) fail(new Error(`the API sent a watch event over ${MAX_WATCH_EVENT_CHARS} characters`));
        });
        res.once('end', () => {
          clearTimeout(timer);
          try {
            line(pending);
            resolve();
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
        res.once('error', fail);
        res.once('close', () => {
          if (!res.complete) fail(new Error('the API closed the watch connection'));
        });
      });
    },
    close: () => agent.destroy(),
  };
}
