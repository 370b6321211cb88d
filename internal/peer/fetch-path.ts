// The cold-rollout path of the peer source (source.ts): a blob GET that no
// holder claims may be in progress on another node (internal/coalesce: the
// digest's coordinator names the fetcher). Its agent serves the blob from
// containerd's ingest as it grows; here it is streamed like any peer blob
// (blob-path.ts: verified against its digest, held back when small, the
// response cut short if the fetcher fails mid-stream, so that containerd
// resumes with a Range and the next ask finds the next fetcher, a holder, or
// nobody and the upstream). If the fetcher does not have it after all (404,
// refused, no headers in time), or failed this agent lately (penalised: a
// stream it cut or stalled, wrong bytes), the coordinator is asked once more
// with that fetcher marked failed: it then names another one or this agent,
// so a fetcher that keeps claiming a fetch it does not serve costs a follower
// one stalled stream, not one per retry.
import type { LocatedContent } from '../content/source.ts';
import { locateBlob } from './blob-path.ts';
import type { Candidate } from './client.ts';
import type { DigestRequest, PeerContext } from './context.ts';

/** The access log's `source` of a blob streamed from a peer's fetch in progress. */
export const PEER_FETCH_SOURCE = 'peer-fetch';

/** Names the peer whose fetch of a digest to stream from (undefined: fetch it upstream); `failed`: not that one again. */
export type FollowFetch = (digest: string, failed?: string) => Promise<Candidate | undefined>;

/** Asks per request at most: the first, and one after a fetcher that did not have it. */
const MAX_ASKS = 2;

export async function locateInProgress(ctx: PeerContext, follow: FollowFetch, query: Omit<DigestRequest, 'candidates'>): Promise<LocatedContent | undefined> {
  let failed: string | undefined;
  for (let round = 0; round < MAX_ASKS; round++) {
    const fetcher = await follow(query.digest, failed);
    if (fetcher === undefined) return undefined;
    // A fetcher that failed this agent lately (cut or stalled a stream, sent wrong bytes) is not followed again: ask for another.
    if (ctx.penalties.isPenalised(fetcher.name) || ctx.penalties.order([fetcher], query.digest).length === 0) {
      failed = fetcher.name;
      continue;
    }
    const located = await locateBlob(ctx, { ...query, candidates: [fetcher], idleTimeoutMs: ctx.followIdleTimeoutMs });
    if (located !== undefined) {
      ctx.counters.coalesced++;
      return { ...located, source: PEER_FETCH_SOURCE };
    }
    ctx.log.debug({ digest: query.digest, fetcher: fetcher.name }, 'the fetcher did not serve the blob: asking the coordinator again');
    failed = fetcher.name;
  }
  return undefined;
}
