// gRPC status codes and the error a failed call rejects with, for the gRPC
// client over node:http2 (grpc-channel.ts): the status from a response's
// trailers (or its headers, in a trailers-only response), and the status of
// a call that got none (an HTTP status other than 200, a reset stream, a lost
// connection), mapped as gRPC's own clients map them
// (grpc/doc/http-grpc-status-mapping.md, PROTOCOL-HTTP2.md).
import { constants as h2, type IncomingHttpHeaders } from 'node:http2';

/** The codes of grpc/doc/statuscodes.md. */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

const NAMES: ReadonlyMap<number, string> = new Map(Object.entries(GrpcStatus).map(([name, code]) => [code, name]));

/** A call that ended with a status other than OK: "5 NOT_FOUND: <details>", as grpc-js wrote it. */
export class GrpcError extends Error {
  override readonly name = 'GrpcError';
  readonly code: number;
  readonly details: string;
  constructor(code: number, details: string) {
    super(`${code} ${NAMES.get(code) ?? 'UNKNOWN'}: ${details}`);
    this.code = code;
    this.details = details;
  }
}

/** grpc-message is percent-encoded UTF-8; a malformed escape is kept as sent. */
export function decodeGrpcMessage(raw: string): string {
  return raw.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return run;
    }
  });
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The status in trailers (or in the headers of a trailers-only response); undefined when there is none. */
export function statusOf(headers: IncomingHttpHeaders): { code: number; message: string } | undefined {
  const raw = header(headers, 'grpc-status');
  if (raw === undefined) return undefined;
  const numeric = /^\d{1,3}$/.test(raw) ? Number(raw) : undefined;
  const code = numeric !== undefined && NAMES.has(numeric) ? numeric : GrpcStatus.UNKNOWN;
  const message = decodeGrpcMessage(header(headers, 'grpc-message') ?? '');
  if (message === '' && code !== numeric) return { code, message: `grpc-status ${JSON.stringify(raw.slice(0, 20))}` };
  return { code, message };
}

/** The error of a response whose HTTP status is not 200 and that carries no gRPC status. */
export function httpStatusError(httpStatus: number): GrpcError {
  const codes: Record<number, number> = {
    400: GrpcStatus.INTERNAL,
    401: GrpcStatus.UNAUTHENTICATED,
    403: GrpcStatus.PERMISSION_DENIED,
    404: GrpcStatus.UNIMPLEMENTED,
    429: GrpcStatus.UNAVAILABLE,
    502: GrpcStatus.UNAVAILABLE,
    503: GrpcStatus.UNAVAILABLE,
    504: GrpcStatus.UNAVAILABLE,
  };
  return new GrpcError(codes[httpStatus] ?? GrpcStatus.UNKNOWN, `HTTP status ${httpStatus} instead of 200`);
}

/** The error of a stream the server reset (RST_STREAM) before any status. */
export function resetError(rstCode: number): GrpcError {
  switch (rstCode) {
    case h2.NGHTTP2_NO_ERROR:
      return new GrpcError(GrpcStatus.INTERNAL, 'the stream ended without a gRPC status');
    case h2.NGHTTP2_REFUSED_STREAM:
      return new GrpcError(GrpcStatus.UNAVAILABLE, 'the server refused the stream');
    case h2.NGHTTP2_CANCEL:
      return new GrpcError(GrpcStatus.CANCELLED, 'the server cancelled the stream');
    case h2.NGHTTP2_ENHANCE_YOUR_CALM:
      return new GrpcError(GrpcStatus.RESOURCE_EXHAUSTED, 'the server reset the stream: ENHANCE_YOUR_CALM');
    case h2.NGHTTP2_INADEQUATE_SECURITY:
      return new GrpcError(GrpcStatus.PERMISSION_DENIED, 'the server reset the stream: INADEQUATE_SECURITY');
    default:
      return new GrpcError(GrpcStatus.INTERNAL, `the server reset the stream with HTTP/2 error code ${rstCode}`);
  }
}
