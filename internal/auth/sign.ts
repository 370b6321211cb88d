// HMAC-SHA256 signatures of peer requests. The sending agent adds four headers:
//
//   x-mirra-peer       its own pod name (the peer marker: served from local content only)
//   x-mirra-timestamp  milliseconds since the epoch, decimal
//   x-mirra-nonce      16 random bytes, base64url
//   x-mirra-signature  hex HMAC-SHA256 of the canonical string below, with the shared key
//
// The canonical string binds the request to its method, its exact request
// target (path and query as sent), the time, the nonce, the sender and the
// receiver (the target pod's name), so a signature is good for one request to
// one agent only; verify.ts checks it, the clock skew and the nonce.
import { createHmac, randomBytes } from 'node:crypto';
import { PEER_REQUEST_HEADER } from './peer-request.ts';

export const TIMESTAMP_HEADER = 'x-mirra-timestamp';
export const NONCE_HEADER = 'x-mirra-nonce';
export const SIGNATURE_HEADER = 'x-mirra-signature';
/** Every header of a signed request (lower case); any one of them makes a request a peer request. */
export const AUTH_HEADERS = [PEER_REQUEST_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER] as const;

const SCHEME = 'mirra-peer-v1';
const NONCE_BYTES = 16;

export interface SignedFields {
  method: string;
  /** Request target as sent on the wire: path and query. */
  path: string;
  timestampMs: number;
  nonce: string;
  /** The sender's pod name. */
  peer: string;
  /** The receiver's pod name. */
  audience: string;
}

/** What a signer needs of a request. */
export interface RequestToSign {
  method: string;
  path: string;
  /** The pod name of the agent the request goes to. */
  audience: string;
}

/** Returns the auth headers for one request (a fresh nonce every call). */
export type PeerSigner = (request: RequestToSign) => Record<string, string>;

export function canonicalString(fields: SignedFields): string {
  const parts = [SCHEME, fields.method.toUpperCase(), fields.path, String(fields.timestampMs), fields.nonce, fields.peer, fields.audience];
  // Header values and request targets cannot hold a newline; refuse rather than sign something ambiguous.
  if (parts.some((part) => part.includes('\n'))) throw new Error('a signed field contains a newline');
  return parts.join('\n');
}

export function computeSignature(key: Buffer, fields: SignedFields): Buffer {
  return createHmac('sha256', key).update(canonicalString(fields)).digest();
}

export interface SignerOptions {
  /** The signing key (the first key of the secret file). */
  key: Buffer;
  /** This agent's pod name. */
  self: string;
  nowMs?: () => number;
  nonce?: () => string;
}

export function createPeerSigner(options: SignerOptions): PeerSigner {
  const nowMs = options.nowMs ?? Date.now;
  const nonce = options.nonce ?? (() => randomBytes(NONCE_BYTES).toString('base64url'));
  return (request) => {
    const fields: SignedFields = { ...request, timestampMs: Math.floor(nowMs()), nonce: nonce(), peer: options.self };
    return {
      [PEER_REQUEST_HEADER]: fields.peer,
      [TIMESTAMP_HEADER]: String(fields.timestampMs),
      [NONCE_HEADER]: fields.nonce,
      [SIGNATURE_HEADER]: computeSignature(options.key, fields).toString('hex'),
    };
  };
}
