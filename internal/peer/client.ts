// HTTP requests to peers, with node:http and one keep-alive Agent per peer
// source (undici is only present as a dependency of another package, so it is
// not imported). Every request carries the peer marker (the peer answers from
// its own content only) and asks for the body as is (no encoding). The promise
// settles when the response headers are there, or rejects on a connection
// error, on the headers timeout or when the caller aborts; the caller owns
// the response body from then on and must consume or destroy it. With a
// signer (peer auth on) every request is signed just before it is sent.
import { Agent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { PeerSigner } from '../auth/sign.ts';
import { PEER_REQUEST_HEADER, PEER_REQUEST_VALUE } from '../auth/peer-request.ts';

export interface Candidate {
  /** The peer's name (its pod name), for logs. */
  name: string;
  /** Base URL of its registry, `http://ip:port`. */
  url: string;
}

/** A peer's answer as the peer paths read it: node:http's, or a blob stream's (stream-client.ts). */
export type PeerResponse = Readable & { statusCode?: number | undefined; headers: IncomingHttpHeaders; complete: boolean };

export interface PeerRequest {
  /** GET and HEAD for content; POST, PUT and DELETE for the fetch coordination of cold rollouts (internal/coalesce). */
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';
  /** Path and query, e.g. `/v2/library/nginx/blobs/sha256:...?ns=docker.io`. */
  path: string;
  headers?: Record<string, string>;
  /** A small body sent whole (the index's pushes, internal/owners); its length goes in content-length. */
  body?: Buffer;
  /** Reject when no response headers came within this time. */
  headersTimeoutMs: number;
  signal?: AbortSignal;
  /** Signs the request (peer auth, internal/auth): called once per request, for a fresh nonce. */
  sign?: PeerSigner;
}

export class PeerRequestError extends Error {
  override readonly name = 'PeerRequestError';
}

/**
 * A peer's size of a blob is not the one another peer announced (the one the
 * response is being sent with). One of them is wrong and nothing here tells
 * which: the answer is refused but the peer is not penalised, so that a peer
 * lying about a size cannot get the honest holders demoted (the liar's own
 * body fails, and that is penalised).
 */
export class SizeConflictError extends Error {
  override readonly name = 'SizeConflictError';
}

export interface PeerAgentOptions {
  /** Open connections per peer (default 32). */
  maxSocketsPerPeer?: number;
}

export function createPeerAgent(options: PeerAgentOptions = {}): Agent {
  // LIFO: the most recently used (warm) connection is reused first.
  return new Agent({ keepAlive: true, maxSockets: options.maxSocketsPerPeer ?? 32, scheduling: 'lifo' });
}

/** Where a request to `candidate` goes: its address and the Host header. Throws PeerRequestError for a URL that is not http. */
export function peerAddress(candidate: Candidate): { host: string; port: number; hostHeader: string } {
  try {
    const base = new URL(candidate.url);
    if (base.protocol !== 'http:') throw new Error(`unsupported scheme ${base.protocol}`);
    return { host: base.hostname.replace(/^\[|\]$/g, ''), port: base.port === '' ? 80 : Number(base.port), hostHeader: base.host };
  } catch (err) {
    throw new PeerRequestError(`bad peer URL ${JSON.stringify(candidate.url)}: ${(err as Error).message}`);
  }
}

/** The headers of a request to a peer: its own, the peer marker, no encoding, and the signature. Throws PeerRequestError when signing fails. */
export function peerHeaders(candidate: Candidate, request: PeerRequest): Record<string, string> {
  let signed: Record<string, string>;
  try {
    signed = request.sign?.({ method: request.method, path: request.path, audience: candidate.name }) ?? {};
  } catch (err) {
    throw new PeerRequestError(`cannot sign the request to ${candidate.name}: ${(err as Error).message}`);
  }
  return { ...request.headers, [PEER_REQUEST_HEADER]: PEER_REQUEST_VALUE, 'accept-encoding': 'identity', 'user-agent': 'mirra-peer', ...signed };
}

/** Calls `fail` when no response headers came within the request's timeout or it is aborted; returns what stops both. */
export function headersDeadline(request: PeerRequest, fail: (message: string) => void): () => void {
  const timer = setTimeout(() => fail(`no response headers within ${request.headersTimeoutMs} ms`), request.headersTimeoutMs);
  const onAbort = (): void => fail('aborted');
  request.signal?.addEventListener('abort', onAbort, { once: true });
  return () => {
    clearTimeout(timer);
    request.signal?.removeEventListener('abort', onAbort);
  };
}

/** Sends a request to a peer; resolves with the response once its headers are there. */
export function peerRequest(agent: Agent, candidate: Candidate, request: PeerRequest): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    if (request.signal?.aborted === true) {
      reject(new PeerRequestError('aborted'));
      return;
    }
    let address: ReturnType<typeof peerAddress>;
    let headers: Record<string, string>;
    try {
      address = peerAddress(candidate);
      headers = peerHeaders(candidate, request);
    } catch (err) {
      reject(err instanceof Error ? err : new PeerRequestError(String(err)));
      return;
    }
    const req = httpRequest({ agent, host: address.host, port: address.port, method: request.method, path: request.path, headers });
    const done = headersDeadline(request, (message) => req.destroy(new PeerRequestError(message)));
    req.once('response', (res) => {
      done();
      resolve(res);
    });
    // Not `once`: errors after the response (the body's) must not go unheard.
    req.on('error', (err) => {
      done();
      reject(err instanceof PeerRequestError ? err : new PeerRequestError(`${candidate.name}: ${err.message}`));
    });
    req.end(request.body);
  });
}

/** How long a small body being drained may take before its connection is dropped. */
export const DRAIN_TIMEOUT_MS = 2000;

/**
 * Lets go of a response body: bodiless (HEAD) and small ones are drained, so
 * the connection is reused, unless the drain takes longer than drainTimeoutMs
 * (a stalling peer must not pin its sockets); others destroyed.
 */
export function discard(res: PeerResponse, method: 'GET' | 'HEAD', drainBytes = 64 * 1024, drainTimeoutMs = DRAIN_TIMEOUT_MS): void {
  const length = Number(res.headers['content-length']);
  if (res.complete) return void res.resume();
  if (method !== 'HEAD' && !(Number.isFinite(length) && length <= drainBytes)) return void res.destroy();
  const timer = setTimeout(() => res.destroy(), drainTimeoutMs);
  timer.unref();
  res.once('close', () => clearTimeout(timer));
  res.resume();
}

/** Reads a whole small body (a manifest, a coordinator's answer), at most `maxBytes`, within `timeoutMs`; the response is destroyed after. */
export async function readBody(res: PeerResponse, maxBytes: number, timeoutMs: number, signal: AbortSignal): Promise<Buffer> {
  const stop = (): void => {
    res.destroy(new PeerRequestError('body not read in time, or aborted'));
  };
  const timer = setTimeout(stop, timeoutMs);
  signal.addEventListener('abort', stop, { once: true });
  const chunks: Buffer[] = [];
  let totalBytes = 0;
  try {
    for await (const chunk of res) {
      const buf = chunk as Buffer;
      totalBytes += buf.length;
      if (totalBytes > maxBytes) throw new PeerRequestError(`body over ${maxBytes} bytes`);
      chunks.push(buf);
    }
    return Buffer.concat(chunks, totalBytes);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', stop);
    res.destroy();
  }
}
