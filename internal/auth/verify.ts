// Verifies the signature headers of a peer request (sign.ts): all four there,
// the timestamp within the allowed clock skew, the HMAC right for one of the
// keys (compared with timingSafeEqual), and the nonce not seen before within
// the skew window (replay.ts). The nonce is recorded only once the signature
// is good, so nobody without the key can fill the replay cache.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { PEER_REQUEST_HEADER } from './peer-request.ts';
import { createReplayCache, type ReplayCache } from './replay.ts';
import { AUTH_HEADERS, computeSignature, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, type SignedFields } from './sign.ts';

export const DEFAULT_MAX_SKEW_MS = 30_000;

export type RejectReason = 'unsigned' | 'malformed' | 'expired' | 'bad signature' | 'replayed' | 'replay cache full';

export type Verdict = { ok: true; peer: string } | { ok: false; reason: RejectReason };

export interface VerifyRequest {
  method: string;
  /** The request target as received (path and query). */
  url: string;
  headers: IncomingHttpHeaders;
}

export interface PeerVerifier {
  verify(request: VerifyRequest): Verdict;
  /** Nonces held by the replay cache, for tests and metrics. */
  nonces(): number;
}

export interface VerifierOptions {
  /** Accepted keys (rotation: the new one first, the old one too until every agent signs with the new). */
  keys: readonly Buffer[];
  /** This agent's pod name: signatures made for another agent are refused. */
  audience: string;
  /** Largest difference between the request's timestamp and this clock (default 30 s). */
  maxSkewMs?: number;
  /** Replay cache bound (default 100,000 nonces). */
  maxNonces?: number;
  nowMs?: () => number;
}

const TIMESTAMP = /^[0-9]{1,15}$/;
const NONCE = /^[A-Za-z0-9_-]{16,64}$/;
const SIGNATURE = /^[0-9a-f]{64}$/;

/** True when the request carries the peer marker or any of the signature headers. */
export function hasPeerHeaders(headers: IncomingHttpHeaders): boolean {
  return AUTH_HEADERS.some((name) => headers[name] !== undefined);
}

function single(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

export function createPeerVerifier(options: VerifierOptions): PeerVerifier {
  if (options.keys.length === 0) throw new Error('a peer verifier needs at least one key');
  const maxSkewMs = options.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  const nowMs = options.nowMs ?? Date.now;
  const replay: ReplayCache = createReplayCache({ maxEntries: options.maxNonces, nowMs });

  return {
    verify(request) {
      const peer = single(request.headers, PEER_REQUEST_HEADER);
      const timestamp = single(request.headers, TIMESTAMP_HEADER);
      const nonce = single(request.headers, NONCE_HEADER);
      const signature = single(request.headers, SIGNATURE_HEADER);
      if (timestamp === undefined || nonce === undefined || signature === undefined) {
        return { ok: false, reason: 'unsigned' };
      }
      if (peer === undefined || !TIMESTAMP.test(timestamp) || !NONCE.test(nonce) || !SIGNATURE.test(signature)) {
        return { ok: false, reason: 'malformed' };
      }
      const timestampMs = Number(timestamp);
      if (Math.abs(nowMs() - timestampMs) > maxSkewMs) return { ok: false, reason: 'expired' };
      const fields: SignedFields = { method: request.method, path: request.url, timestampMs, nonce, peer, audience: options.audience };
      const given = Buffer.from(signature, 'hex');
      let good = false;
      // Every key is tried (no early exit), each comparison in constant time.
      for (const key of options.keys) good = timingSafeEqual(computeSignature(key, fields), given) || good;
      if (!good) return { ok: false, reason: 'bad signature' };
      const verdict = replay.check(nonce, timestampMs + maxSkewMs);
      if (verdict === 'replayed') return { ok: false, reason: 'replayed' };
      if (verdict === 'full') return { ok: false, reason: 'replay cache full' };
      return { ok: true, peer };
    },
    nonces: () => replay.size(),
  };
}
