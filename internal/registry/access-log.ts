// One access-log line per request (Fastify's own request logging is off). The
// line is written when the raw response closes, so hijacked (streamed) replies,
// error replies, 503s from the pressure guard and aborted downloads are logged
// alike. Handlers annotate `request.accessLog` (handler, source, bytes sent).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { clip, pathOf } from './path.ts';

/** `fetches`: a peer's fetch coordination (routes-fetches.ts). */
export type HandlerKind = 'base' | 'manifest' | 'blob' | 'probe' | 'fetches' | 'index' | 'holders' | 'unknown';

export interface AccessLogState {
  startMs: number;
  handler: HandlerKind;
  /** Where the content came from: `local` or `peer`. */
  source: string;
  /** Which peer, when source is `peer`. */
  peer: string | undefined;
  /** The request came from another agent (marked; served from local content only). */
  fromPeer: boolean;
  /** Body bytes written, when the handler counted them. */
  bytesSent: number | undefined;
  /** Registry the request was for (from `ns`), when parsed. */
  registry: string | undefined;
  /** --verify-pull-access: what the pull gate decided for containerd's request (allow, challenge, deny, open). */
  pullAccess?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Null until the access log's onRequest hook ran (undefined on framework-error requests). */
    accessLog: AccessLogState | null;
  }
}

/** The fields of one access-log line, as logged and as handed to `onLine` (for metrics). */
export interface AccessLine {
  status: number;
  method: string;
  /** Path only, clipped. */
  url: string;
  latencyMs: number;
  remoteIp: string;
  handler: HandlerKind;
  source: string;
  bytesSent?: number;
  registry?: string;
  peer?: string;
  fromPeer?: true;
  pullAccess?: string;
  /** Closed before the whole response was handed to the OS. */
  aborted?: true;
}

export interface AccessLog {
  /** Starts the clock and arranges the log line; idempotent. */
  begin(request: FastifyRequest, reply: FastifyReply): AccessLogState;
}

function bodyBytes(reply: FastifyReply, method: string, state: AccessLogState, finished: boolean): number | undefined {
  if (state.bytesSent !== undefined) return state.bytesSent;
  const status = reply.raw.statusCode;
  if (method === 'HEAD' || status === 304 || status === 204) return 0;
  if (!finished) return undefined;
  // Fastify's own headers first: it hands them to writeHead() as an object, which the raw response's getHeader() never
  // sees on a real socket (light-my-request's inject() does see them), so manifests, errors and /v2/ logged no bytes.
  const header = reply.getHeader('content-length');
  const value = typeof header === 'string' ? Number(header) : header;
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** `onLine` is called with every line after it is logged (e.g. to count requests for metrics); it must not throw. */
export function createAccessLog(log: Logger, onLine?: (line: Readonly<AccessLine>) => void): AccessLog {
  return {
    begin(request, reply) {
      if (request.accessLog) return request.accessLog;
      const state: AccessLogState = {
        startMs: performance.now(),
        handler: 'unknown',
        source: 'local',
        peer: undefined,
        fromPeer: false,
        bytesSent: undefined,
        registry: undefined,
      };
      request.accessLog = state;
      let finished = false;
      reply.raw.once('finish', () => {
        finished = true;
      });
      reply.raw.once('close', () => {
        const method = request.raw.method ?? '';
        const line: AccessLine = {
          status: reply.raw.statusCode,
          method,
          url: clip(pathOf(request.raw.url ?? ''), 1024),
          latencyMs: Math.round((performance.now() - state.startMs) * 1000) / 1000,
          remoteIp: request.ip,
          handler: state.handler,
          source: state.source,
        };
        const bytes = bodyBytes(reply, method, state, finished);
        if (bytes !== undefined) line.bytesSent = bytes;
        if (state.registry !== undefined) line.registry = state.registry;
        if (state.peer !== undefined) line.peer = state.peer;
        if (state.fromPeer) line.fromPeer = true;
        if (state.pullAccess !== undefined) line.pullAccess = state.pullAccess;
        // Closed before the whole response was handed to the OS: client gone or body failed.
        if (!finished) line.aborted = true;
        log.info(line, 'request');
        onLine?.(line);
      });
      return state;
    },
  };
}

/** Installs the access log on the root instance (before any other onRequest hook). */
export function installAccessLog(app: FastifyInstance, accessLog: AccessLog): void {
  app.decorateRequest('accessLog', null);
  app.addHook('onRequest', (request, reply, done) => {
    accessLog.begin(request, reply);
    done();
  });
}
