// What the blob, manifest and tag paths of the peer source (blob-path.ts,
// manifest-path.ts, tag-path.ts) share, created once per source by
// createPeerSource (source.ts): the candidates and their penalties, the
// counters, the logger, the connections, the settings with their defaults
// filled in, and the race every path asks its candidates with. Each path is
// plain functions of this context and of one request's values.
import type { Logger } from '../log/logger.ts';
import type { ParsedDigest } from '../oci/digest.ts';
import type { ContentRequest, ResolvedTag } from '../content/source.ts';
import type { SingleFlight } from '../sync/single-flight.ts';
import type { Attempt, AttemptContext, FetchedManifest } from './attempts.ts';
import { SizeConflictError, type Candidate } from './client.ts';
import type { HedgeDelay } from './hedge.ts';
import type { PeerPenalties } from './penalty.ts';
import { raceCandidates, type RaceOptions, type RaceWinner } from './race.ts';
import type { PeerSourceStats } from './stats.ts';
import type { Redirects } from './redirects.ts';
import type { StreamLimit } from './stream-limit.ts';
import { errorMessage } from '../errors/message.ts';

/** The `source` of what peers answered, in LocatedContent and ResolvedTag (the access log's `source`). */
export const PEER_SOURCE = 'peer';

/** A manifest fetched from a peer and verified, shared by concurrent requests for it. */
export interface PeerManifest extends FetchedManifest {
  /** The peer that sent it. */
  peer: string;
}

export interface PeerContext {
  log: Logger;
  /** The peers that may have a key, best first, never self (PeerSourceOptions.candidates). */
  candidates(key: string): readonly Candidate[] | Promise<readonly Candidate[]>;
  /** Candidates asked per request at most. */
  maxCandidates: number;
  /** The connections, the headers timeout and the signer of every attempt. */
  attempts: AttemptContext;
  hedge: HedgeDelay;
  counters: PeerSourceStats;
  penalties: PeerPenalties;
  /** Blob GETs streamed from peers at once. */
  streams: StreamLimit;
  idleTimeoutMs: number;
  /** The same for a stream from a peer's fetch in progress (fetch-path.ts), which may wait for its first bytes. */
  followIdleTimeoutMs: number;
  maxManifestBytes: number;
  verifyHoldBytes: number;
  verifyHoldBudgetBytes: number;
  /** Bytes held back now over all streams, against verifyHoldBudgetBytes. */
  heldBytes: number;
  /** Wrong bytes of a streamed blob reached the client (PeerSourceOptions.onWrongBytesDelivered). */
  onWrongBytesDelivered(digest: string): void;
  /** Concurrent requests for one manifest share one fetch of the verified body. */
  manifestFlight: SingleFlight<PeerManifest | undefined>;
  /** Concurrent resolves of one tag share one race. */
  tagFlight: SingleFlight<ResolvedTag | undefined>;
  /** Streams from a peer's fetch in progress that have had no byte yet (fetch-path.ts), oldest first. */
  waitingFollows: Set<WaitingFollow>;
  /** Digests whose waiting follow was cut to free a download slot, and until when not again (ms since the epoch). */
  yielded: Map<string, number>;
  /** Large blobs answered with a redirect to their holder (redirect-path.ts); undefined: always streamed. */
  redirects: Redirects | undefined;
}

/** A stream to containerd from a peer's fetch that has not sent a byte yet. */
export interface WaitingFollow {
  digest: string;
  sinceMs: number;
  /** Ends the response to containerd short (no byte sent): containerd frees its download slot and asks again. */
  cut(): void;
}

/** One request for content by digest, once the digest is parsed and its candidates are known. */
export interface DigestRequest {
  request: ContentRequest;
  digest: string;
  parsed: ParsedDigest;
  candidates: readonly Candidate[];
  /** A peer silent this long mid-stream is given up on; default the context's idleTimeoutMs. */
  idleTimeoutMs?: number;
  /** Told when the first bytes of the blob came from a peer. */
  onFirstBytes?(): void;
}

/** What one race asks: the candidates, one attempt at one of them, and how a hit that lost is let go of. */
export type PeerRace<T> = Pick<RaceOptions<T>, 'candidates' | 'attempt' | 'dispose' | 'signal'>;

/** The attempt at `candidate` for `request`, aborted by `signal`. */
export function attemptAt(ctx: PeerContext, request: ContentRequest, candidate: Candidate, signal: AbortSignal): Attempt {
  return { ctx: ctx.attempts, request, candidate, signal };
}

/** Disposes of a hit that holds nothing open (a HEAD's answer, a body read whole). */
export function nothingToRelease(): void {}

/** Moves a peer last for a while, counted and logged. */
export function penalise(ctx: PeerContext, candidate: Candidate, reason: string): void {
  ctx.counters.penalties++;
  const penaltyMs = ctx.penalties.penalise(candidate.name);
  ctx.log.info({ peer: candidate.name, penaltyMs, reason }, 'peer penalised: it goes last for a while');
}

/** The candidates for `key`, penalised ones last, at most maxCandidates; counts the lookup. */
export async function candidatesFor(ctx: PeerContext, key: string): Promise<readonly Candidate[]> {
  const all = ctx.penalties.order(await ctx.candidates(key), key);
  if (all.length === 0) ctx.counters.noCandidates++;
  else ctx.counters.lookups++;
  return all.length > ctx.maxCandidates ? all.slice(0, ctx.maxCandidates) : all;
}

/** A failed attempt: counted, and its peer penalised unless it only disagreed on a size. */
function attemptFailed(ctx: PeerContext, candidate: Candidate, err: unknown): void {
  ctx.counters.failures++;
  if (err instanceof SizeConflictError) {
    ctx.log.info({ err, peer: candidate.name }, 'peer disagrees on the size of a blob; not penalised (which one is wrong is not known)');
    return;
  }
  ctx.log.debug({ err, peer: candidate.name }, 'peer attempt failed');
  penalise(ctx, candidate, errorMessage(err));
}

/** Races the candidates on one kind of attempt, counting misses, failures and hedges. */
export function race<T>(ctx: PeerContext, round: PeerRace<T>): Promise<RaceWinner<T> | undefined> {
  const { counters } = ctx;
  return raceCandidates({
    candidates: round.candidates,
    hedge: ctx.hedge,
    signal: round.signal,
    attempt: async (candidate, attemptSignal) => {
      const value = await round.attempt(candidate, attemptSignal);
      if (value === undefined) counters.misses++;
      return value;
    },
    dispose: round.dispose,
    onHedge: () => counters.hedges++,
    onFailure: (candidate, err) => attemptFailed(ctx, candidate, err),
  }).then((winner) => {
    if (winner === undefined) counters.notFound++;
    else counters.hits++;
    return winner;
  });
}
