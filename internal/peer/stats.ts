// Counters of the peer source, for metrics (internal/metrics/metrics.ts reads
// them into counters with a collect hook at every scrape) and for tests.

export interface PeerSourceStats {
  /** Requests for which the routing index named at least one candidate. */
  lookups: number;
  /** Requests for which no candidate claimed the key (answered without network I/O). */
  noCandidates: number;
  /** Requests a peer answered. */
  hits: number;
  /** Requests no candidate could answer. */
  notFound: number;
  /** 404 answers from peers (false positives of their filters). */
  misses: number;
  /** Failed attempts: connection errors, timeouts, bad answers. */
  failures: number;
  /** Second attempts started because the first was slow to answer. */
  hedges: number;
  /** Blob streams continued from another peer after a failure mid-stream. */
  resumes: number;
  /** Content from a peer that did not match its digest. */
  digestMismatches: number;
  /** Streamed blobs whose wrong bytes partly reached the client before the digest check failed (the download was cut). */
  wrongBytesDelivered: number;
  /** Faults for which a peer was penalised (moved last for a while): failed attempts, failures mid-body, wrong bytes. */
  penalties: number;
  /** Blob GETs answered "not here" at once because the limit of concurrent peer streams was reached. */
  streamsLimited: number;
  /** Blob GETs streamed from another node's fetch in progress (a cold rollout, fetch-path.ts). */
  coalesced: number;
  /** Such streams cut before their first byte to free a download slot of containerd's for this node's own fetch. */
  yielded: number;
  /** Blob GETs answered with a redirect to the holder (redirect-path.ts). */
  redirects: number;
  /** Blob GETs streamed because the blob was asked for again soon after its redirect (a retry or a resume). */
  redirectsAskedAgain: number;
}

export function createPeerStats(): PeerSourceStats {
  return {
    lookups: 0,
    noCandidates: 0,
    hits: 0,
    notFound: 0,
    misses: 0,
    failures: 0,
    hedges: 0,
    resumes: 0,
    digestMismatches: 0,
    wrongBytesDelivered: 0,
    penalties: 0,
    streamsLimited: 0,
    coalesced: 0,
    yielded: 0,
    redirects: 0,
    redirectsAskedAgain: 0,
  };
}
