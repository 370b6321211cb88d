// A raw HTTP/1.1 exchange over a plain TCP socket, for tests that must send
// bytes no HTTP client would (un-normalised request targets, broken request
// lines, oversized headers, unknown methods). The request is written as is
// (it should ask for `Connection: close`); the answer is read until the server
// closes the connection and its first final response is parsed
// (Content-Length or chunked).
import { connect } from 'node:net';

export interface RawHttpResponse {
  status: number;
  /** Lower-case names; repeated headers joined with ', '. */
  headers: Record<string, string>;
  body: Buffer;
  /** Everything the server sent. */
  raw: Buffer;
}

export class RawHttpTimeoutError extends Error {
  override readonly name = 'RawHttpTimeoutError';
}

function decodeChunked(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', offset);
    if (lineEnd < 0) throw new Error('truncated chunked body');
    const sizeBytes = Number.parseInt(data.subarray(offset, lineEnd).toString('latin1'), 16);
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) throw new Error('bad chunk size');
    if (sizeBytes === 0) return Buffer.concat(parts);
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + sizeBytes));
    offset = lineEnd + 2 + sizeBytes + 2;
  }
}

/** Parses the first final response of `raw`; `headRequest`: the response has no body whatever its headers say. */
export function parseRawResponse(raw: Buffer, headRequest = false): RawHttpResponse | undefined {
  const headEnd = raw.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const lines = raw.subarray(0, headEnd).toString('latin1').split('\r\n');
  const statusMatch = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] ?? '');
  if (statusMatch === null) throw new Error(`not an HTTP response: ${JSON.stringify(lines[0])}`);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`bad header line ${JSON.stringify(line)}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const status = Number(statusMatch[1]);
  const rest = raw.subarray(headEnd + 4);
  // Interim answers (100 Continue) come before the response.
  if (status >= 100 && status < 200 && status !== 101) return parseRawResponse(rest, headRequest);
  let body: Buffer;
  if (headRequest || status === 304 || status === 204) body = Buffer.alloc(0);
  else if (headers['transfer-encoding']?.toLowerCase() === 'chunked') body = decodeChunked(rest);
  else if (headers['content-length'] !== undefined) body = rest.subarray(0, Number(headers['content-length']));
  else body = rest;
  return { status, headers, body, raw };
}

/**
 * Sends `request` to 127.0.0.1:`port` and resolves with the parsed response,
 * or undefined when the server closed the connection without answering.
 * Rejects with RawHttpTimeoutError when the server neither answers nor closes in time.
 */
export function rawExchange(
  port: number,
  request: string | Buffer,
  options: { timeoutMs?: number; head?: boolean } = {},
): Promise<RawHttpResponse | undefined> {
  const timeoutMs = options.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new RawHttpTimeoutError(`no answer within ${timeoutMs} ms to ${JSON.stringify(String(request).slice(0, 200))}`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    // A reset after (or instead of) the answer is a way of closing; what was received counts.
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      try {
        resolve(parseRawResponse(Buffer.concat(chunks), options.head));
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
    // No half-close after the request: Node's server takes a client's FIN for "gone" and drops answers still
    // being prepared. The requests ask for `Connection: close`, so the server closes once it has answered.
    socket.write(request);
  });
}
