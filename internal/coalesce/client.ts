// Requests to a digest's coordinator (records.ts on another agent), over the
// peer connection rules (internal/peer/client.ts: marked, signed with peer
// auth on). Three small requests on /mirra/v1/fetches/<digest>:
//
//   POST   ?from=<self>&failed=<name>  who fetches it? {"fetcher":"<pod name>"};
//                                      the asker's own name: nobody did, it does now
//   PUT    ?from=<self>                the sender's fetch goes on (renew)
//   DELETE ?from=<self>                the sender's fetch is over or stalled (drop)
//
// Every one is bounded by `timeoutMs` for the whole answer: an ask that does
// not come back in time means "nobody is fetching" (the caller's containerd
// goes upstream, as without coordination), so a slow or gone coordinator
// costs a miss at most that much.
import type { Agent } from 'node:http';
import type { PeerSigner } from '../auth/sign.ts';
import { isRecord } from '../json/narrow.ts';
import { discard, peerRequest, PeerRequestError, readBody, type Candidate } from '../peer/client.ts';
import { FAILED_PARAM, FETCHES_PATH, FROM_PARAM } from './protocol.ts';
/** Bytes an answer to an ask may have at most (`{"fetcher":"<253-char name>"}`). */
const MAX_ANSWER_BYTES = 1024;

export interface CoordinatorClientOptions {
  /** This agent's pod name. */
  self: string;
  agent: Agent;
  timeoutMs: number;
  sign?: PeerSigner;
}

export interface CoordinatorClient {
  /** The fetcher the coordinator names (this agent's own name: fetch it); rejects on no answer in time or a bad one. */
  ask(coordinator: Candidate, digest: string, failed?: string): Promise<string>;
  renew(coordinator: Candidate, digest: string): Promise<void>;
  drop(coordinator: Candidate, digest: string): Promise<void>;
}

function fetcherOf(answer: unknown, coordinator: Candidate): string {
  if (!isRecord(answer) || typeof answer.fetcher !== 'string' || answer.fetcher === '') {
    throw new PeerRequestError(`${coordinator.name} answered without a fetcher`);
  }
  return answer.fetcher;
}

export function createCoordinatorClient(options: CoordinatorClientOptions): CoordinatorClient {
  const send = async (coordinator: Candidate, method: 'POST' | 'PUT' | 'DELETE', path: string): Promise<unknown> => {
    const signal = AbortSignal.timeout(options.timeoutMs);
    const res = await peerRequest(options.agent, coordinator, { method, path, headersTimeoutMs: options.timeoutMs, sign: options.sign, signal });
    if (res.statusCode !== 200 && res.statusCode !== 204) {
      discard(res, 'GET');
      throw new PeerRequestError(`${coordinator.name} answered ${res.statusCode} to ${method} ${path}`);
    }
    if (method !== 'POST') {
      discard(res, 'GET');
      return undefined;
    }
    const body = await readBody(res, MAX_ANSWER_BYTES, options.timeoutMs, signal);
    return JSON.parse(body.toString('utf8')) as unknown;
  };
  const pathOf = (digest: string): string => `${FETCHES_PATH}${digest}?${FROM_PARAM}=${encodeURIComponent(options.self)}`;
  return {
    async ask(coordinator, digest, failed) {
      const query = failed === undefined ? '' : `&${FAILED_PARAM}=${encodeURIComponent(failed)}`;
      return fetcherOf(await send(coordinator, 'POST', pathOf(digest) + query), coordinator);
    },
    async renew(coordinator, digest) {
      await send(coordinator, 'PUT', pathOf(digest));
    },
    async drop(coordinator, digest) {
      await send(coordinator, 'DELETE', pathOf(digest));
    },
  };
}
