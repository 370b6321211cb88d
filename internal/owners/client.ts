// Requests to a shard's owner on another agent (internal/registry/
// routes-index.ts answers them), over the peer connection rules
// (internal/peer/client.ts: marked, signed with peer auth on): a push of a
// holder's entries, and a lookup of a key's holders. Both are bounded by a
// timeout for the whole answer; the caller decides what a failure means (the
// holder retries, the locator asks the second owner).
import { createHash } from 'node:crypto';
import type { Agent } from 'node:http';
import type { PeerSigner } from '../auth/sign.ts';
import { discard, peerRequest, PeerRequestError, readBody, type Candidate } from '../peer/client.ts';
import {
  encodeEntries,
  FROM_PARAM,
  HOLDERS_PATH,
  INDEX_PATH,
  INDEX_CONTENT_TYPE,
  keyHex,
  MAX_ANSWER_BYTES,
  parseHoldersAnswer,
  parsePushAnswer,
  SUM_PARAM,
  ZONE_PARAM,
  type HoldersAnswer,
  type HoldersQuery,
  type IndexEntry,
  type PushAnswer,
} from './protocol.ts';

export interface OwnerClientOptions {
  /** This agent's pod name. */
  self: string;
  agent: Agent;
  sign?: PeerSigner;
  /** Bound of a push (headers and answer). */
  pushTimeoutMs: number;
}

export interface OwnerClient {
  push(owner: Candidate, entries: readonly IndexEntry[]): Promise<PushAnswer>;
  holders(owner: Candidate, query: HoldersQuery): Promise<HoldersAnswer>;
}

/** The base64url SHA-256 of a body, as the `sum` parameter carries it. */
export function bodySum(body: Buffer): string {
  return createHash('sha256').update(body).digest('base64url');
}

interface Exchange {
  method: 'GET' | 'POST';
  path: string;
  body?: Buffer;
  timeoutMs: number;
  signal?: AbortSignal;
}

async function exchange(options: OwnerClientOptions, owner: Candidate, request: Exchange): Promise<unknown> {
  const timeout = AbortSignal.timeout(request.timeoutMs);
  const signal = request.signal === undefined ? timeout : AbortSignal.any([timeout, request.signal]);
  const headers = request.body === undefined ? undefined : { 'content-type': INDEX_CONTENT_TYPE, 'content-length': String(request.body.length) };
  const res = await peerRequest(options.agent, owner, {
    method: request.method,
    path: request.path,
    headers,
    body: request.body,
    headersTimeoutMs: request.timeoutMs,
    sign: options.sign,
    signal,
  });
  if (res.statusCode !== 200) {
    discard(res, 'GET');
    throw new PeerRequestError(`${owner.name} answered ${res.statusCode} to ${request.method} ${request.path.split('?')[0]}`);
  }
  const body = await readBody(res, MAX_ANSWER_BYTES, request.timeoutMs, signal);
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw new PeerRequestError(`${owner.name} answered with a body that is not JSON`);
  }
}

export function createOwnerClient(options: OwnerClientOptions): OwnerClient {
  const from = `${FROM_PARAM}=${encodeURIComponent(options.self)}`;
  return {
    async push(owner, entries) {
      const body = encodeEntries(entries);
      const path = `${INDEX_PATH}?${from}&${SUM_PARAM}=${bodySum(body)}`;
      return parsePushAnswer(await exchange(options, owner, { method: 'POST', path, body, timeoutMs: options.pushTimeoutMs }));
    },
    async holders(owner, { key, zone, timeoutMs, signal }) {
      const query = zone === undefined ? from : `${from}&${ZONE_PARAM}=${encodeURIComponent(zone)}`;
      const path = `${HOLDERS_PATH}${keyHex(key)}?${query}`;
      return parseHoldersAnswer(await exchange(options, owner, { method: 'GET', path, timeoutMs, signal }));
    },
  };
}
