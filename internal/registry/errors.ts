// OCI distribution error bodies: `{"errors":[{"code","message","detail"}]}`.
// One table maps every code this registry emits to its HTTP status and default
// message (the distribution spec's codes, plus UNKNOWN/UNAVAILABLE/RANGE_INVALID
// from CNCF distribution). Every error response of the app, Fastify's own
// included, goes through `ociError`/`toOciError`.
import type { FastifyReply } from 'fastify';
import { isRecord } from '../json/narrow.ts';

export const ERROR_TABLE = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 404, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  TAG_INVALID: { status: 400, message: 'manifest tag did not match URI' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  RANGE_INVALID: { status: 416, message: 'requested range not satisfiable' },
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
  UNKNOWN: { status: 500, message: 'unknown error' },
  /** mirra's own: a peer's push to the index (routes-index.ts) that cannot be read. */
  INDEX_INVALID: { status: 400, message: 'index push invalid' },
} as const satisfies Record<string, { status: number; message: string }>;

export type OciErrorCode = keyof typeof ERROR_TABLE;

export interface OciErrorBody {
  errors: Array<{ code: OciErrorCode; message: string; detail: unknown }>;
}

/** An error a handler throws to answer with an OCI error body. */
export class RegistryError extends Error {
  readonly code: OciErrorCode;
  readonly detail: unknown;
  /** Extra response headers (e.g. Retry-After, Content-Range). */
  readonly headers: Record<string, string>;
  constructor(code: OciErrorCode, detail?: unknown, headers: Record<string, string> = {}) {
    super(ERROR_TABLE[code].message);
    this.name = 'RegistryError';
    this.code = code;
    this.detail = detail ?? null;
    this.headers = headers;
  }
}

export function errorBody(code: OciErrorCode, detail: unknown = null, message?: string): OciErrorBody {
  return { errors: [{ code, message: message ?? ERROR_TABLE[code].message, detail }] };
}

export interface OciErrorResponse {
  status: number;
  body: OciErrorBody;
  headers: Record<string, string>;
  /** True for failures of the server itself (worth a warn log line). */
  internal: boolean;
}

/**
 * Maps anything thrown inside the app to an OCI error response: RegistryError
 * as is; Fastify's framework errors by their status (404 NAME_UNKNOWN, bad URL
 * NAME_INVALID, 405 UNSUPPORTED, 503 UNAVAILABLE, other 4xx UNSUPPORTED with
 * Fastify's status kept); everything else 500 UNKNOWN without internals.
 */
export function toOciError(err: unknown): OciErrorResponse {
  if (err instanceof RegistryError) {
    const { status } = ERROR_TABLE[err.code];
    // 503 UNAVAILABLE is load shed on purpose (the concurrency limit, draining): the access log has it. A warn line
    // per shed request, stack and all, piled up 54 MiB of unwritten log in bench:load-peer (15 KB a line, 3,600 lines).
    return { status, body: errorBody(err.code, err.detail), headers: err.headers, internal: status >= 500 && err.code !== 'UNAVAILABLE' };
  }
  const status = isRecord(err) && typeof err.statusCode === 'number' ? err.statusCode : 500;
  const fastifyCode = isRecord(err) && typeof err.code === 'string' ? err.code : undefined;
  const detail = fastifyCode === undefined ? null : { reason: fastifyCode };
  if (fastifyCode === 'FST_ERR_BAD_URL' || fastifyCode === 'FST_ERR_MAX_PARAM_LENGTH') {
    return { status: 400, body: errorBody('NAME_INVALID', detail), headers: {}, internal: false };
  }
  if (status === 404) return { status, body: errorBody('NAME_UNKNOWN', detail), headers: {}, internal: false };
  if (status === 405) return { status, body: errorBody('UNSUPPORTED', detail), headers: {}, internal: false };
  if (status === 429) return { status, body: errorBody('TOOMANYREQUESTS', detail), headers: {}, internal: false };
  if (status === 503) return { status, body: errorBody('UNAVAILABLE', detail), headers: {}, internal: false };
  if (status >= 400 && status < 500) {
    return { status, body: errorBody('UNSUPPORTED', detail), headers: {}, internal: false };
  }
  return { status: 500, body: errorBody('UNKNOWN'), headers: {}, internal: true };
}

/** Sends an OCI error response on a (not yet sent) Fastify reply. */
export function sendOciError(reply: FastifyReply, response: OciErrorResponse): FastifyReply {
  reply.code(response.status);
  for (const [name, value] of Object.entries(response.headers)) reply.header(name, value);
  reply.header('content-type', 'application/json; charset=utf-8');
  return reply.send(JSON.stringify(response.body));
}
