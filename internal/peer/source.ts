// The peers as a ContentSource (internal/registry/source.ts), to chain after
// the local store: chainSources([storeSource(store), createPeerSource(...)]).
//
// - No candidate for the key (the routing index claims nobody has it): the
//   answer is undefined at once, without any network I/O, so the registry
//   answers 404 in well under 5 ms and containerd goes upstream.
// - Candidates are asked in order with a hedge (race.ts, hedge.ts); a 404 from
//   one (its filter's false positive) moves on to the next at once.
// - Blobs: locate() sends the GET and returns once a peer has sent response
//   headers, so the registry's status line and Content-Length go out only
//   after a peer answered; read() streams that body, resuming from the next
//   peer with a Range on a failure mid-stream, verifying the digest (resume.ts).
//   A client's Range is answered with the whole verified blob (200), never
//   asked of a peer as such: its bytes could not be checked. containerd skips
//   to its offset itself, and its chunked fetch (2.1+) turns sequential. HEAD
//   asks peers with HEAD.
// - Manifests: fetched whole (capped), verified, served from memory.
// - Tags: HEAD by tag on the peers that claim the reference gives the digest
//   (only when resolveTags is on); the manifest is then located by digest.
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { PeerSigner } from '../auth/sign.ts';
import type { Logger } from '../log/logger.ts';
import { parseDigest, type ParsedDigest } from '../oci/digest.ts';
import { isAnyManifestMediaType, sniffManifestMediaType } from '../oci/mediatype.ts';
import { imageReference } from '../oci/reference.ts';
import { NotFoundError, type BlobInfo } from '../oci/store.ts';
import { MAX_MANIFEST_BYTES } from '../registry/routes-manifests.ts';
import type { ContentRequest, ContentSource, LocatedContent, ResolvedTag } from '../registry/source.ts';
import { createSingleFlight } from '../sync/single-flight.ts';
import { getBlob, getManifest, headBlob, headTag, type AttemptContext } from './attempts.ts';
import { createPeerAgent, discard, SizeConflictError, type Candidate } from './client.ts';
import { createHedgeDelay, type HedgeOptions } from './hedge.ts';
import { createPeerPenalties, type PenaltyOptions } from './penalty.ts';
import { raceCandidates, type RaceWinner } from './race.ts';
import { createResumingStream } from './resume.ts';
import { createPeerStats, type PeerSourceStats } from './stats.ts';
import { createStreamLimit } from './stream-limit.ts';

export const PEER_SOURCE = 'peer';

export interface PeerSourceOptions {
  /** The peers that may have a key (a digest, or a reference `registry/name:tag`), best first, never self. */
  candidates(key: string): readonly Candidate[];
  logger: Logger;
  /** Resolve tags through peers (else resolveTag always answers undefined). */
  resolveTags: boolean;
  hedge?: HedgeOptions;
  /** Time a peer has to send response headers (default 3000 ms); a small body (manifest) must be read within it too. */
  requestTimeoutMs?: number;
  /** A peer that sends no body bytes for this long, while wanted, is given up on (default 10000 ms). */
  idleTimeoutMs?: number;
  /**
   * Whole blobs up to this size are held back until their digest is checked,
   * so that wrong bytes never reach containerd (default 32 MiB; 0: never).
   * Larger ones are streamed with only the last chunk held back.
   */
  verifyHoldBytes?: number;
  /** Bytes held back at once over all streams at most (default 32 MiB, within the agent's memory budget: bench:load-peer); beyond, blobs are streamed. */
  verifyHoldBudgetBytes?: number;
  /** Peers that fail (connection, timeout, 5xx, mid-body, wrong bytes) go last for a while. */
  penalty?: PenaltyOptions;
  /** Candidates asked per request at most (default 5). */
  maxCandidates?: number;
  /** Open connections per peer (default 32). */
  maxSocketsPerPeer?: number;
  maxManifestBytes?: number;
  /** Signs every request to a peer (peer auth, internal/auth/sign.ts); undefined: unsigned. */
  sign?: PeerSigner;
  /**
   * Called when a streamed blob turned out wrong after some of its bytes went
   * to the client: containerd has them in its ingest for the blob and would
   * resume from them, failing every pull of it. The agent drops that ingest
   * (internal/containerd/ingests.ts) so that the next pull starts over.
   */
  onWrongBytesDelivered?(digest: string): void;
  /**
   * Blob GETs streamed from peers at once at most (default 32; 0: no limit).
   * Beyond it, locate() answers undefined at once: 404, containerd goes
   * upstream (stream-limit.ts says why it does not wait).
   */
  maxStreams?: number;
}

export interface PeerSource extends ContentSource {
  /** Counters since creation (a snapshot), for metrics. */
  stats(): PeerSourceStats;
  /** The current hedge delay. */
  hedgeDelayMs(): number;
  /** Closes the idle connections to peers. */
  close(): void;
}

export function createPeerSource(options: PeerSourceOptions): PeerSource {
  const log = options.logger.child({ component: 'peer-source' });
  const agent = createPeerAgent({ maxSocketsPerPeer: options.maxSocketsPerPeer });
  const hedge = createHedgeDelay(options.hedge);
  const counters = createPeerStats();
  const streams = createStreamLimit(options.maxStreams ?? 32);
  const maxCandidates = Math.max(1, options.maxCandidates ?? 5);
  // The stream limit bounds the blob connections; a hedged or retried stream may briefly need one more per peer.
  const streamAgent = createPeerAgent({ maxSocketsPerPeer: streams.max + maxCandidates });
  const idleTimeoutMs = options.idleTimeoutMs ?? 10_000;
  const maxManifestBytes = options.maxManifestBytes ?? MAX_MANIFEST_BYTES;
  const verifyHoldBytes = options.verifyHoldBytes ?? 32 * 1024 * 1024;
  const verifyHoldBudgetBytes = options.verifyHoldBudgetBytes ?? 32 * 1024 * 1024;
  let heldBytes = 0;
  const penalties = createPeerPenalties(options.penalty);
  const penalise = (candidate: Candidate, reason: string): void => {
    counters.penalties++;
    const penaltyMs = penalties.penalise(candidate.name);
    log.info({ peer: candidate.name, penaltyMs, reason }, 'peer penalised: it goes last for a while');
  };
  const tagFlight = createSingleFlight<ResolvedTag | undefined>();
  const manifestFlight = createSingleFlight<{ body: Buffer; mediaType: string | undefined; peer: string } | undefined>();
  const ctx: AttemptContext = { agent, streamAgent, headersTimeoutMs: options.requestTimeoutMs ?? 3000, sign: options.sign };

  const candidatesFor = (key: string): readonly Candidate[] => {
    const all = penalties.order(options.candidates(key), key);
    if (all.length === 0) counters.noCandidates++;
    else counters.lookups++;
    return all.length > maxCandidates ? all.slice(0, maxCandidates) : all;
  };

  /** Races the candidates on one kind of attempt, counting misses, failures and hedges. */
  const race = <T>(
    candidates: readonly Candidate[],
    attempt: (candidate: Candidate, signal: AbortSignal) => Promise<T | undefined>,
    dispose: (value: T) => void,
    signal?: AbortSignal,
  ): Promise<RaceWinner<T> | undefined> =>
    raceCandidates({
      candidates,
      hedge,
      signal,
      attempt: async (candidate, attemptSignal) => {
        const value = await attempt(candidate, attemptSignal);
        if (value === undefined) counters.misses++;
        return value;
      },
      dispose,
      onHedge: () => counters.hedges++,
      onFailure: (candidate, err) => {
        counters.failures++;
        if (err instanceof SizeConflictError) {
          log.info({ err, peer: candidate.name }, 'peer disagrees on the size of a blob; not penalised (which one is wrong is not known)');
          return;
        }
        log.debug({ err, peer: candidate.name }, 'peer attempt failed');
        penalise(candidate, err instanceof Error ? err.message : String(err));
      },
    }).then((winner) => {
      if (winner === undefined) counters.notFound++;
      else counters.hits++;
      return winner;
    });

  const dropResponse = (res: IncomingMessage): void => discard(res, 'GET');

  /** The bytes `start`..`end` of a blob, from the first candidate that has them. */
  const openRange = (request: ContentRequest, digest: string, info: BlobInfo, start: number, end: number, candidates: readonly Candidate[], signal?: AbortSignal) =>
    race(candidates, (c, s) => getBlob(ctx, request, digest, { start, end, sizeBytes: info.size }, c, s), dropResponse, signal);

  /** The whole blob from `first` on, verified against its digest. */
  const streamWhole = (request: ContentRequest, digest: string, parsed: ParsedDigest, info: BlobInfo, first: RaceWinner<IncomingMessage>): Readable => {
    const end = info.size - 1;
    const holdAll = info.size <= verifyHoldBytes && heldBytes + info.size <= verifyHoldBudgetBytes;
    const stream = createResumingStream({
      digest,
      first,
      start: 0,
      end,
      verify: parsed,
      holdAll,
      open: (offset, rest, signal) => openRange(request, digest, info, offset, end, rest, signal),
      idleTimeoutMs,
      log,
      onResume: (from, to, offset) => {
        counters.resumes++;
        log.info({ digest, from: from.name, to: to.name, offset }, 'resumed a blob from another peer');
      },
      onPeerFailure: (peer, err) => penalise(peer, err.message),
      onMismatch: (peers) => {
        counters.digestMismatches++;
        log.warn({ digest, peers: peers.map((peer) => peer.name) }, 'peer sent bytes that do not match the digest');
        for (const peer of peers) {
          penalise(peer, 'bytes that do not match the digest');
          penalties.distrust(peer.name, digest);
        }
      },
      onWrongBytesDelivered: () => {
        counters.wrongBytesDelivered++;
        log.warn({ digest }, 'wrong bytes of a streamed blob reached the client before the digest check: its download fails, and the client must start it over');
        options.onWrongBytesDelivered?.(digest);
      },
      onComplete: (peer) => penalties.succeeded(peer.name),
    });
    if (holdAll) {
      heldBytes += info.size;
      stream.once('close', () => (heldBytes -= info.size));
    }
    return stream;
  };

  /** A blob found on a peer; `open` is the response of the GET that found it (none after a HEAD). */
  /** `slot`: the stream-limit slot of a blob GET, freed when its stream closes, or on release() when never read. */
  const located = (request: ContentRequest, digest: string, parsed: ParsedDigest, info: BlobInfo, winner: RaceWinner<unknown>, open: IncomingMessage | undefined, slot: () => void = () => {}): LocatedContent => {
    let held = open;
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
      async read() {
        let first: RaceWinner<IncomingMessage> | undefined;
        if (held !== undefined) {
          first = { value: held, candidate: winner.candidate, rest: winner.rest };
          held = undefined;
        } else {
          first = await openRange(request, digest, info, 0, info.size - 1, everyone);
          if (first === undefined) throw new NotFoundError(digest);
        }
        return track(streamWhole(request, digest, parsed, info, first));
      },
      release,
    };
  };

  const locateManifest = async (request: ContentRequest, digest: string, parsed: ParsedDigest, candidates: readonly Candidate[]): Promise<LocatedContent | undefined> => {
    const manifestCtx = {
      ...ctx,
      maxManifestBytes,
      onMismatch: (peer: Candidate) => {
        counters.digestMismatches++;
        log.warn({ digest, peer: peer.name }, 'peer sent a manifest that does not match the digest');
        penalties.distrust(peer.name, digest);
      },
    };
    // Concurrent requests for one manifest (the HEADs of a tag during a rollout) share one fetch of the verified body.
    const fetched = await manifestFlight.run(`${request.registry}/${request.name}@${digest}`, async () => {
      const winner = await race(candidates, (c, s) => getManifest(manifestCtx, request, parsed, c, s), () => {});
      if (winner === undefined) return undefined;
      penalties.succeeded(winner.candidate.name);
      return { ...winner.value, peer: winner.candidate.name };
    });
    if (fetched === undefined) return undefined;
    const { body, mediaType, peer } = fetched;
    const info: BlobInfo = { digest, size: body.length };
    // The verified body says what it is; the peer's Content-Type only when the body does not.
    const declared = sniffManifestMediaType(body) ?? (mediaType !== undefined && isAnyManifestMediaType(mediaType) ? mediaType : undefined);
    if (declared !== undefined) info.mediaType = declared;
    return {
      info,
      source: PEER_SOURCE,
      peer,
      read: async (range) => Readable.from([range === undefined ? body : body.subarray(range.start, range.end + 1)]),
    };
  };

  return {
    async resolveTag(request, tag) {
      if (!options.resolveTags) return undefined;
      const reference = imageReference(request.registry, request.name, tag);
      // Many HEADs of one tag at once (a rollout) make one race, not one each.
      return tagFlight.run(reference, async () => {
        const candidates = candidatesFor(reference);
        if (candidates.length === 0) return undefined;
        const winner = await race(candidates, (c, s) => headTag(ctx, request, tag, c, s), () => {});
        if (winner === undefined) return undefined;
        penalties.succeeded(winner.candidate.name);
        return { digest: winner.value.digest, source: PEER_SOURCE, peer: winner.candidate.name };
      });
    },

    async locate(request, digest) {
      const parsed = parseDigest(digest);
      if (parsed === undefined) return undefined;
      const candidates = candidatesFor(digest);
      if (candidates.length === 0) return undefined;
      if (request.kind === 'manifest') return locateManifest(request, digest, parsed, candidates);
      if (request.method === 'HEAD') {
        const winner = await race(candidates, (c, s) => headBlob(ctx, request, digest, c, s), () => {});
        if (winner === undefined) return undefined;
        penalties.succeeded(winner.candidate.name);
        return located(request, digest, parsed, { digest, size: winner.value }, winner, undefined);
      }
      const slot = streams.tryAcquire();
      if (slot === undefined) {
        counters.streamsLimited++;
        log.debug({ digest, maxStreams: streams.max }, 'peer stream limit reached: not found here, containerd goes upstream');
        return undefined;
      }
      const winner = await race(candidates, (c, s) => getBlob(ctx, request, digest, undefined, c, s), dropResponse).catch((err: unknown) => {
        slot();
        throw err;
      });
      if (winner === undefined) {
        slot();
        return undefined;
      }
      const sizeBytes = Number(winner.value.headers['content-length']);
      return located(request, digest, parsed, { digest, size: sizeBytes }, winner, winner.value, slot);
    },

    stats: () => ({ ...counters }),
    hedgeDelayMs: () => hedge.delayMs(),
    close() {
      agent.destroy();
      streamAgent.destroy();
    },
  };
}
