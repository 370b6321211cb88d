// The blob path of the peer source (source.ts). locate() sends the GET and
// returns once a peer has sent response headers, so the registry's status
// line and Content-Length go out only after a peer answered; read() streams
// that body, resuming from the next peer with a Range on a failure
// mid-stream, verifying the digest (resume.ts). A client's Range is answered
// with the whole verified blob (200), never asked of a peer as such: its bytes
// could not be checked. HEAD asks peers with HEAD. Blob GETs hold a slot of
// the stream limit (stream-limit.ts) from locate() until their stream closes;
// none free: not found here at once, and containerd goes upstream.
import type { Readable } from 'node:stream';
import { NotFoundError, type BlobInfo } from '../oci/store.ts';
import type { LocatedContent } from '../content/source.ts';
import { getBlob, headBlob } from './attempts.ts';
import { discard, type Candidate, type PeerResponse } from './client.ts';
import { attemptAt, nothingToRelease, PEER_SOURCE, penalise, race, type DigestRequest, type PeerContext } from './context.ts';
import type { RaceWinner } from './race.ts';
import { createResumingStream, type ResumingStreamOptions } from './resume.ts';
import { locateForRedirect } from './redirect-path.ts';
import { redirectedLately } from './redirects.ts';

/** A blob request whose blob a peer has: its size is known. */
interface FoundBlob extends DigestRequest {
  info: BlobInfo;
}

/** A blob found on a peer, and what its locate() holds. */
interface LocatedBlob extends FoundBlob {
  /** The race that found it. */
  winner: RaceWinner<unknown>;
  /** The response of the GET that found it (none after a HEAD). */
  open: PeerResponse | undefined;
  /** The stream-limit slot of a blob GET, freed when its stream closes, or on release() when never read; none after a HEAD. */
  slot?: () => void;
}

/** Bytes of a found blob to ask for: `start` to `end` (inclusive), from one of `candidates`. */
interface RangeAsk {
  start: number;
  end: number;
  candidates: readonly Candidate[];
  signal?: AbortSignal;
}

type StreamEvents = Pick<ResumingStreamOptions, 'onResume' | 'onPeerFailure' | 'onMismatch' | 'onWrongBytesDelivered' | 'onComplete'>;

function dropResponse(res: PeerResponse): void {
  discard(res, 'GET');
}

/** A blob from the candidates: HEAD asks for its size, GET opens its body, or answers with a redirect (redirect-path.ts). */
export function locateBlob(ctx: PeerContext, query: DigestRequest): Promise<LocatedContent | undefined> {
  if (query.request.method === 'HEAD') return locateByHead(ctx, query);
  const { redirects } = ctx;
  if (redirects === undefined || query.request.redirectable !== true) return locateByGet(ctx, query);
  const lately = redirectedLately(redirects, query.digest);
  if (lately === undefined) return locateForRedirect(ctx, redirects, query, () => locateByGet(ctx, query));
  // Asked again soon after its redirect: the pull failed, was cut or is retried. Streamed (verified), that holder
  // penalised like any failing peer (counted, logged), so the penalties' own order puts it last.
  ctx.counters.redirectsAskedAgain++;
  const holder = query.candidates.find((c) => c.name === lately.peer);
  if (holder !== undefined) penalise(ctx, holder, 'its blob was asked for again soon after a redirect to it');
  return locateByGet(ctx, { ...query, candidates: ctx.penalties.order(query.candidates, query.digest) });
}

async function locateByHead(ctx: PeerContext, query: DigestRequest): Promise<LocatedContent | undefined> {
  const { request, digest } = query;
  const winner = await race(ctx, {
    candidates: query.candidates,
    attempt: (candidate, signal) => headBlob(attemptAt(ctx, request, candidate, signal), digest),
    dispose: nothingToRelease,
  });
  if (winner === undefined) return undefined;
  ctx.penalties.succeeded(winner.candidate.name);
  return located(ctx, { ...query, info: { digest, size: winner.value }, winner, open: undefined });
}

async function locateByGet(ctx: PeerContext, query: DigestRequest): Promise<LocatedContent | undefined> {
  const { request, digest } = query;
  const slot = ctx.streams.tryAcquire();
  if (slot === undefined) {
    ctx.counters.streamsLimited++;
    ctx.log.debug({ digest, maxStreams: ctx.streams.max }, 'peer stream limit reached: not found here, containerd goes upstream');
    return undefined;
  }
  const winner = await race(ctx, {
    candidates: query.candidates,
    attempt: (candidate, signal) => getBlob(attemptAt(ctx, request, candidate, signal), digest, undefined),
    dispose: dropResponse,
  }).catch((err: unknown) => {
    slot();
    throw err;
  });
  if (winner === undefined) {
    slot();
    return undefined;
  }
  const sizeBytes = Number(winner.value.headers['content-length']);
  return located(ctx, { ...query, info: { digest, size: sizeBytes }, winner, open: winner.value, slot });
}

/** The bytes `start`..`end` of a blob, from the first candidate that has them. */
function openRange(ctx: PeerContext, blob: FoundBlob, range: RangeAsk): Promise<RaceWinner<PeerResponse> | undefined> {
  const { request, digest, info } = blob;
  const { start, end } = range;
  return race(ctx, {
    candidates: range.candidates,
    attempt: (candidate, signal) => getBlob(attemptAt(ctx, request, candidate, signal), digest, { start, end, sizeBytes: info.size }),
    dispose: dropResponse,
    signal: range.signal,
  });
}

/** What a blob's stream tells: resumes, peer failures and wrong bytes are counted, logged and penalised. */
function streamEvents(ctx: PeerContext, digest: string): StreamEvents {
  const { counters, log, penalties } = ctx;
  return {
    onResume: (from, to, offset) => {
      counters.resumes++;
      log.info({ digest, from: from.name, to: to.name, offset }, 'resumed a blob from another peer');
    },
    onPeerFailure: (peer, err) => penalise(ctx, peer, err.message),
    onMismatch: (peers) => {
      counters.digestMismatches++;
      log.warn({ digest, peers: peers.map((peer) => peer.name) }, 'peer sent bytes that do not match the digest');
      for (const peer of peers) {
        penalise(ctx, peer, 'bytes that do not match the digest');
        penalties.distrust(peer.name, digest);
      }
    },
    onWrongBytesDelivered: () => {
      counters.wrongBytesDelivered++;
      log.warn({ digest }, 'wrong bytes of a streamed blob reached the client before the digest check: its download fails, and the client must start it over');
      ctx.onWrongBytesDelivered(digest);
    },
    onComplete: (peer) => penalties.succeeded(peer.name),
  };
}

/** The whole blob from `first` on, verified against its digest. */
function streamWhole(ctx: PeerContext, blob: FoundBlob, first: RaceWinner<PeerResponse>): Readable {
  const { digest, info } = blob;
  const end = info.size - 1;
  const holdAll = info.size <= ctx.verifyHoldBytes && ctx.heldBytes + info.size <= ctx.verifyHoldBudgetBytes;
  const stream = createResumingStream({
    digest,
    first,
    start: 0,
    end,
    verify: blob.parsed,
    holdAll,
    open: (offset, rest, signal) => openRange(ctx, blob, { start: offset, end, candidates: rest, signal }),
    idleTimeoutMs: blob.idleTimeoutMs ?? ctx.idleTimeoutMs,
    log: ctx.log,
    onFirstBytes: blob.onFirstBytes,
    ...streamEvents(ctx, digest),
  });
  if (holdAll) {
    ctx.heldBytes += info.size;
    stream.once('close', () => (ctx.heldBytes -= info.size));
  }
  return stream;
}

/** The LocatedContent of a blob found on a peer: read() streams it whole, verified; release() lets go of what locate() holds. */
function located(ctx: PeerContext, blob: LocatedBlob): LocatedContent {
  const { winner, info, digest } = blob;
  const slot = blob.slot ?? nothingToRelease;
  let held = blob.open;
  let streaming = false;
  const everyone = [winner.candidate, ...winner.rest];
  const drop = (): void => {
    if (held !== undefined) dropResponse(held);
    held = undefined;
  };
  const release = (): void => {
    drop();
    if (!streaming) slot();
  };
  const track = (stream: Readable): Readable => {
    streaming = true;
    stream.once('close', slot);
    return stream;
  };
  return {
    info,
    source: PEER_SOURCE,
    peer: winner.candidate.name,
    // Always the whole blob, verified: a client's Range is answered with all of it (LocatedContent.wholeOnly).
    wholeOnly: true,
    // Its chunks are views of the connection's read buffers (stream-client.ts).
    giveBack: (chunk) => ctx.attempts.streams.giveBack(chunk),
    async read() {
      let first: RaceWinner<PeerResponse> | undefined;
      if (held !== undefined) {
        first = { value: held, candidate: winner.candidate, rest: winner.rest };
        held = undefined;
      } else {
        first = await openRange(ctx, blob, { start: 0, end: info.size - 1, candidates: everyone });
        if (first === undefined) throw new NotFoundError(digest);
      }
      return track(streamWhole(ctx, blob, first));
    },
    release,
  };
}
