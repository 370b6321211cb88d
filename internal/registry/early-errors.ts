// Answers for requests rejected before they reach a route, so that they too get
// an OCI error body and the API version header:
// - by Fastify's router (a path with bad percent-encoding): the method is
//   checked first (405 UNSUPPORTED), then the path parser names the part that
//   is malformed (NAME_INVALID, TAG_INVALID or DIGEST_INVALID);
// - by Node's HTTP parser (Fastify's clientErrorHandler): an unknown or
//   lower-case method is 405 UNSUPPORTED, a malformed request target 400
//   NAME_INVALID, headers over Node's limit (16 KiB, request line included)
//   431, a request too slow to arrive 408, anything else malformed 400 (the
//   last three with code UNSUPPORTED and the parser's code as `reason`);
// - CONNECT, which Node hands to the server's 'connect' event (no listener:
//   the socket is closed without an answer): 405 UNSUPPORTED;
// - an Expect header other than 100-continue ('checkExpectation' event; no
//   listener: an empty 417): 417 with code UNSUPPORTED.
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { RegistryError, toOciError, type OciErrorResponse } from './errors.ts';
import { clip, parseRegistryPath } from './path.ts';
import { ALLOWED_METHODS, API_VERSION, API_VERSION_HEADER } from './routes.ts';

function unsupportedMethod(method: string): OciErrorResponse {
  return toOciError(new RegistryError('UNSUPPORTED', { method: clip(method, 32) }, { allow: ALLOWED_METHODS }));
}

/** The answer to an error Fastify raises before routing (frameworkErrors). */
export function frameworkErrorResponse(err: unknown, method: string, rawUrl: string): OciErrorResponse {
  if (method !== 'GET' && method !== 'HEAD') return unsupportedMethod(method);
  const code = typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined;
  if (code === 'FST_ERR_BAD_URL') {
    const parsed = parseRegistryPath(rawUrl);
    if (parsed.kind === 'invalid') return toOciError(parsed.error);
  }
  return toOciError(err);
}

/** The answer to an error of Node's HTTP parser; undefined when there is nobody to answer. */
export function clientErrorResponse(err: { code?: string | undefined }): OciErrorResponse | undefined {
  switch (err.code) {
    case 'ECONNRESET':
      return undefined;
    case 'HPE_INVALID_METHOD':
      return unsupportedMethod('(invalid)');
    case 'HPE_INVALID_URL':
      return toOciError(new RegistryError('NAME_INVALID', { reason: err.code }));
    case 'HPE_HEADER_OVERFLOW':
      return toOciError({ statusCode: 431, code: err.code });
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return toOciError({ statusCode: 408, code: err.code });
    default:
      return toOciError({ statusCode: 400, code: err.code ?? 'HPE_ERROR' });
  }
}

/** The response as raw bytes for a socket no ServerResponse owns; the connection is closed after it. */
export function rawResponse(response: OciErrorResponse): string {
  const body = JSON.stringify(response.body);
  const lines = [
    `HTTP/1.1 ${response.status} ${STATUS_CODES[response.status] ?? 'Error'}`,
    'content-type: application/json; charset=utf-8',
    `content-length: ${Buffer.byteLength(body)}`,
    `${API_VERSION_HEADER}: ${API_VERSION}`,
    ...Object.entries(response.headers).map(([name, value]) => `${name}: ${value}`),
    'connection: close',
  ];
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

/** True while a response of this connection is already on the wire (pipelining): raw bytes would corrupt it. */
function responding(socket: Duplex): boolean {
  const current = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  return current?.headersSent === true;
}

/** Fastify's clientErrorHandler: Node's behaviour (answer, then close), with an OCI body. */
export function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  const response = clientErrorResponse(err);
  if (response !== undefined && !socket.destroyed && socket.writable && !responding(socket)) {
    socket.write(rawResponse(response));
  }
  socket.destroy();
}

/** The server's 'connect' listener: CONNECT is not a method of this API. */
export function answerConnect(_request: IncomingMessage, socket: Duplex): void {
  if (socket.writable) socket.write(rawResponse(unsupportedMethod('CONNECT')));
  socket.destroy();
}

/** The server's 'checkExpectation' listener: an expectation other than 100-continue cannot be met. */
export function answerExpectation(request: IncomingMessage, response: ServerResponse): void {
  const answer = toOciError({ statusCode: 417, code: 'EXPECTATION_FAILED' });
  const body = JSON.stringify(answer.body);
  response.writeHead(answer.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    [API_VERSION_HEADER]: API_VERSION,
  });
  response.end(request.method === 'HEAD' ? undefined : body);
  // The request's body (if any) is not wanted.
  request.resume();
}
