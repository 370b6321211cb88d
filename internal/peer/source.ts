// The peers as a ContentSource (internal/content/source.ts), to chain after
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
// Each path is its own module (blob-path.ts, manifest-path.ts, tag-path.ts),
// functions of one context (context.ts) that this source creates once.
import type { PeerSigner } from '../auth/sign.ts';
import type { Logger } from '../log/logger.ts';
import { parseDigest } from '../oci/digest.ts';
import { MAX_MANIFEST_BYTES } from '../oci/limits.ts';
import type { ContentSource } from '../content/source.ts';
import { createSingleFlight } from '../sync/single-flight.ts';
import { locateBlob } from './blob-path.ts';
import { createPeerAgent, type Candidate } from './client.ts';
import { createStreamClient } from './stream-client.ts';
import { candidatesFor, type PeerContext } from './context.ts';
import { createHedgeDelay, type HedgeOptions } from './hedge.ts';
import { locateInProgress, yieldWaitingFollow, type FollowFetch } from './fetch-path.ts';
import { locateManifest } from './manifest-path.ts';
import { createPeerPenalties, type PenaltyOptions } from './penalty.ts';
import { createPeerStats, type PeerSourceStats } from './stats.ts';
import { createStreamLimit } from './stream-limit.ts';
import { resolveTagOnPeers } from './tag-path.ts';
import { createRedirects, type RedirectSettings } from './redirects.ts';

// Defined with the context the paths share (they cannot import this module, which imports them).

export interface PeerSourceOptions {
  /** The peers that may have a key (a digest, or a reference `registry/name:tag`), best first, never self. */
  candidates(key: string): readonly Candidate[] | Promise<readonly Candidate[]>;
  logger: Logger;
  /** Resolve tags through peers (else resolveTag always answers undefined). */
  resolveTags: boolean;
  hedge?: HedgeOptions;
  /** Time a peer has to send response headers (default 3000 ms); a small body (manifest) must be read within it too. */
  requestTimeoutMs?: number;
  /** A peer that sends no body bytes for this long, while wanted, is given up on (default 10000 ms). */
  idleTimeoutMs?: number;
  /** The same for a stream from a peer's fetch in progress (default 30000 ms, and never below idleTimeoutMs). */
  followIdleTimeoutMs?: number;
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
  /**
   * A blob GET that no candidate claims: the peer whose fetch of it from the
   * upstream is in progress, to stream from (fetch-path.ts); undefined, or no
   * function: not found here, containerd goes upstream.
   */
  follow?: FollowFetch;
  /** Large blobs answered with a redirect to their holder (redirect-path.ts); undefined: every blob streamed through this agent. */
  redirect?: RedirectSettings;
}

export interface PeerSource extends ContentSource {
  /** Counters since creation (a snapshot), for metrics. */
  stats(): PeerSourceStats;
  /** The current hedge delay. */
  hedgeDelayMs(): number;
  /** Cuts the oldest stream from a peer's fetch that has waited `minWaitMs` without a byte (fetch-path.ts says why); true if one was. */
  yieldWaitingFollow(minWaitMs: number): boolean;
  /** Closes the idle connections to peers. */
  close(): void;
}

/** The context of one source: the settings with their defaults, its connections, counters, penalties and limits. */
function createPeerContext(options: PeerSourceOptions): PeerContext {
  const streams = createStreamLimit(options.maxStreams ?? 32);
  const maxCandidates = Math.max(1, options.maxCandidates ?? 5);
  return {
    log: options.logger.child({ component: 'peer-source' }),
    candidates: (key) => options.candidates(key),
    maxCandidates,
    attempts: {
      agent: createPeerAgent({ maxSocketsPerPeer: options.maxSocketsPerPeer }),
      // The stream limit bounds the blob connections; a hedged or retried stream may briefly need one more per peer.
      streams: createStreamClient({ maxSocketsPerPeer: streams.max + maxCandidates }),
      headersTimeoutMs: options.requestTimeoutMs ?? 3000,
      sign: options.sign,
    },
    hedge: createHedgeDelay(options.hedge),
    counters: createPeerStats(),
    penalties: createPeerPenalties(options.penalty),
    streams,
    idleTimeoutMs: options.idleTimeoutMs ?? 10_000,
    followIdleTimeoutMs: Math.max(options.followIdleTimeoutMs ?? 30_000, options.idleTimeoutMs ?? 10_000),
    maxManifestBytes: options.maxManifestBytes ?? MAX_MANIFEST_BYTES,
    verifyHoldBytes: options.verifyHoldBytes ?? 32 * 1024 * 1024,
    verifyHoldBudgetBytes: options.verifyHoldBudgetBytes ?? 32 * 1024 * 1024,
    heldBytes: 0,
    onWrongBytesDelivered: (digest) => options.onWrongBytesDelivered?.(digest),
    manifestFlight: createSingleFlight(),
    tagFlight: createSingleFlight(),
    waitingFollows: new Set(),
    yielded: new Map(),
    redirects: options.redirect === undefined ? undefined : createRedirects(options.redirect),
  };
}

export function createPeerSource(options: PeerSourceOptions): PeerSource {
  const ctx = createPeerContext(options);
  return {
    async resolveTag(request, tag) {
      if (!options.resolveTags) return undefined;
      return resolveTagOnPeers(ctx, request, tag);
    },

    async locate(request, digest) {
      const parsed = parseDigest(digest);
      if (parsed === undefined) return undefined;
      const candidates = await candidatesFor(ctx, digest);
      if (candidates.length === 0) {
        // Blob GETs only: manifests and tags stay per node, and containerd never HEADs a blob in a pull.
        const { follow } = options;
        const coalesce = follow !== undefined && request.kind !== 'manifest' && request.method !== 'HEAD';
        return coalesce ? locateInProgress(ctx, follow, { request, digest, parsed }) : undefined;
      }
      const query = { request, digest, parsed, candidates };
      return request.kind === 'manifest' ? locateManifest(ctx, query) : locateBlob(ctx, query);
    },

    stats: () => ({ ...ctx.counters }),
    hedgeDelayMs: () => ctx.hedge.delayMs(),
    yieldWaitingFollow: (minWaitMs) => yieldWaitingFollow(ctx, minWaitMs),
    close() {
      ctx.attempts.agent.destroy();
      ctx.attempts.streams.close();
    },
  };
}
