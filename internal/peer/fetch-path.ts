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
import type { Readable } from 'node:stream';
import type { LocatedContent } from '../content/source.ts';
import { locateBlob } from './blob-path.ts';
import type { Candidate } from './client.ts';
import type { DigestRequest, PeerContext, WaitingFollow } from './context.ts';

/** The access log's `source` of a blob streamed from a peer's fetch in progress. */
export const PEER_FETCH_SOURCE = 'peer-fetch';

/** Names the peer whose fetch of a digest to stream from (undefined: fetch it upstream); `failed`: not that one again. */
export type FollowFetch = (digest: string, failed?: string) => Promise<Candidate | undefined>;

/** Asks per request at most: the first, and one after a fetcher that did not have it. */
const MAX_ASKS = 2;

/** The follow's stream, registered as waiting until its first byte comes (or it closes). */
async function readWaiting(ctx: PeerContext, located: LocatedContent, waiting: WaitingFollow, range: Parameters<LocatedContent['read']>[0]): Promise<Readable> {
  const stream = await located.read(range);
  waiting.cut = () => stream.destroy(new Error("cut before its first byte to free one of containerd's download slots"));
  if (!stream.destroyed) ctx.waitingFollows.add(waiting);
  stream.once('close', () => ctx.waitingFollows.delete(waiting));
  return stream;
}

/** A digest's waiting follow is cut at most once per this long (containerd retries an empty cut body 3 times at most). */
const YIELD_AGAIN_AFTER_MS = 60_000;

/**
 * Cuts the oldest follow that has waited `minWaitMs` without a byte (each
 * digest at most once a minute), so that containerd frees the download slot
 * it holds; true if one was cut.
 *
 * Why: containerd 2.1 takes one of its download slots (max_concurrent_downloads,
 * 3) per request to a host, in order of asking. A node that was told to fetch
 * a blob asks the upstream after its 404, behind its requests already waiting;
 * if its slots are all held by follows of fetches that have not started on
 * other nodes, and theirs by follows of its own, no fetch starts (measured: a
 * cold wave of 5 nodes stalled until the follows timed out, 2.2 times the
 * image from the upstream). A follow cut before its first byte is an
 * unexpected EOF at offset 0 to containerd: it frees the slot, its queued
 * upstream request takes it, and it asks for the blob again afterwards.
 */
export function yieldWaitingFollow(ctx: PeerContext, minWaitMs: number): boolean {
  const now = Date.now();
  for (const [digest, until] of ctx.yielded) if (until <= now) ctx.yielded.delete(digest);
  for (const waiting of ctx.waitingFollows) {
    if (now - waiting.sinceMs < minWaitMs) return false;
    if (ctx.yielded.has(waiting.digest)) continue;
    ctx.waitingFollows.delete(waiting);
    ctx.yielded.set(waiting.digest, now + YIELD_AGAIN_AFTER_MS);
    ctx.counters.yielded++;
    ctx.log.info(
      { digest: waiting.digest, waitedMs: now - waiting.sinceMs },
      "cut a follow that had no byte yet: containerd's download slot goes to this node's own fetch",
    );
    waiting.cut();
    return true;
  }
  return false;
}

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
    const waiting: WaitingFollow = { digest: query.digest, sinceMs: Date.now(), cut: () => {} };
    const started = (): void => void ctx.waitingFollows.delete(waiting);
    // Never redirected (redirect-path.ts): a stream of a fetch in progress needs this agent (head first, cut to free a download slot).
    const request = { ...query.request, redirectable: false };
    const located = await locateBlob(ctx, { ...query, request, candidates: [fetcher], idleTimeoutMs: ctx.followIdleTimeoutMs, onFirstBytes: started });
    if (located !== undefined) {
      ctx.counters.coalesced++;
      // headersFirst: cut before its first byte, containerd asks this agent again instead of going to the upstream.
      return { ...located, source: PEER_FETCH_SOURCE, headersFirst: true, read: (range) => readWaiting(ctx, located, waiting, range) };
    }
    ctx.log.info({ digest: query.digest, fetcher: fetcher.name }, 'the fetcher did not serve the blob: asking the coordinator again');
    failed = fetcher.name;
  }
  return undefined;
}
