// The fetcher's side of a cold rollout: the blobs this node's containerd is
// fetching from the upstream because the coordinator recorded this agent as
// their fetcher (the agent answered its containerd 404 and containerd went on
// to the next host). While one is in progress, peers may stream it from here
// (in-progress-source.ts), and the coordinator must hear that the fetch goes
// on: every tick (1 s) one ListStatuses call shows each ingest's offset, and
//
// - an ingest that grew within `stallMs`: renew;
// - an ingest that has not started (no byte yet) while another ingest of the
//   node grew within `stallMs`: renew. containerd 2.1 opens the ingests of
//   all of an image's layers at once and takes one of its download slots
//   (max_concurrent_downloads, 3) per request to a host: after the agent's
//   404 the upstream request waits for a free slot, behind the node's other
//   downloads, for as long as they take (measured in a cold wave of 5 nodes:
//   12 s). Dropping such a fetch after `stallMs` made the waiting followers
//   fetch it again: 1.2 times the image from the upstream instead of 1.0;
// - no ingest any more and the blob committed: renew for `completeGraceMs`
//   (until the index names this node as a holder), then drop;
// - otherwise (containerd stopped, the pull was cancelled, the upstream
//   stalls, nothing of the node grows for `stallMs`): drop, and stop serving it.
//
// The ticker runs only while there are fetches.
import type { IngestControl } from '../containerd/client.ts';
import { isIngestOf } from '../containerd/ingests.ts';
import type { IngestStatus } from '../containerd/messages.ts';
import type { Logger } from '../log/logger.ts';

export interface FetchReports {
  /** The fetch of `digest` goes on (or just completed). */
  renew(digest: string): void;
  /** The fetch of `digest` is over: stalled, gone, or completed long enough ago. */
  drop(digest: string): void;
}

export interface LocalFetchesOptions {
  ingests: IngestControl;
  /** Whether the blob is in containerd's content store (committed). */
  isCommitted(digest: string): Promise<boolean>;
  reports: FetchReports;
  log: Logger;
  /** An ingest that does not grow for this long is a failed fetch (default 5000 ms). */
  stallMs?: number;
  /** How often ingests are looked at and the coordinator told (default 1000 ms). */
  tickMs?: number;
  /** A committed blob is served and renewed this long, until holders show in the index (default 30000 ms). */
  completeGraceMs?: number;
  /**
   * Called at a tick when a fetch's ingest is there but has no byte yet: its
   * download waits for one of containerd's slots (the agent then frees one,
   * internal/peer/fetch-path.ts yieldWaitingFollow).
   */
  onUnstarted?(): void;
  nowMs?(): number;
}

/** What is known of one fetch's ingest. */
export interface IngestInfo {
  ref: string;
  /** Expected size in bytes (0: not known). */
  total: number;
}

export interface LocalFetches {
  /** This node's containerd now fetches `digest` from the upstream (recorded by the coordinator). */
  start(digest: string): void;
  /** Whether `digest` is being fetched here (or completed within the grace period): peers may stream it. */
  has(digest: string): boolean;
  /** The fetch's ingest, looked up now when not known yet; undefined when there is none (committed, or not started). */
  ingestOf(digest: string): Promise<IngestInfo | undefined>;
  /** Fetches in progress or in their grace period. */
  size(): number;
  close(): void;
}

interface Fetch {
  lastGrowthMs: number;
  offset: number;
  completedMs: number | undefined;
}

/** The state of one fetch after a tick: still on (renewed) or over (dropped). */
type Verdict = 'renew' | 'drop';

/** The fetches and their ticker: one object, changed only by the functions below. */
interface FetchesState {
  readonly options: LocalFetchesOptions;
  readonly now: () => number;
  readonly stallMs: number;
  readonly tickMs: number;
  readonly graceMs: number;
  readonly fetches: Map<string, Fetch>;
  /** Every ingest's offset at the last tick (by ref), and when one last grew: containerd is busy downloading. */
  offsets: Map<string, number>;
  lastNodeGrowthMs: number;
  timer: NodeJS.Timeout | undefined;
  ticking: boolean;
  closed: boolean;
}

async function judge(s: FetchesState, digest: string, fetch: Fetch, status: IngestStatus | undefined): Promise<Verdict> {
  const at = s.now();
  if (status !== undefined) {
    if (status.offset > fetch.offset) {
      fetch.offset = status.offset;
      fetch.lastGrowthMs = at;
    }
    if (at - fetch.lastGrowthMs < s.stallMs) return 'renew';
    // Not started: waiting for a download slot while the node's other downloads move.
    return fetch.offset === 0 && at - s.lastNodeGrowthMs < s.stallMs ? 'renew' : 'drop';
  }
  if (fetch.completedMs === undefined && (await s.options.isCommitted(digest))) fetch.completedMs = at;
  if (fetch.completedMs !== undefined) return at - fetch.completedMs < s.graceMs ? 'renew' : 'drop';
  // Not started yet (containerd opens its ingest before asking the first host) or gone without a blob.
  return at - fetch.lastGrowthMs < s.stallMs ? 'renew' : 'drop';
}

/** containerd's ingests now; notes when any of them grew (the node is downloading). */
async function seeIngests(s: FetchesState): Promise<IngestStatus[]> {
  const statuses = await s.options.ingests.listIngests().catch((err: unknown) => {
    s.options.log.debug({ err }, "cannot list containerd's ingests; the fetches are judged without them");
    return [] as IngestStatus[];
  });
  const offsets = new Map(statuses.map((status) => [status.ref, status.offset]));
  if (statuses.some((status) => status.offset > (s.offsets.get(status.ref) ?? 0))) s.lastNodeGrowthMs = s.now();
  s.offsets = offsets;
  return statuses;
}

async function tick(s: FetchesState): Promise<void> {
  if (s.ticking || s.closed) return;
  s.ticking = true;
  const { log, reports } = s.options;
  try {
    const statuses = await seeIngests(s);
    let unstarted = false;
    for (const [digest, fetch] of [...s.fetches]) {
      const status = statuses.find((candidate) => isIngestOf(candidate, digest));
      if (status?.offset === 0) unstarted = true;
      const verdict = await judge(s, digest, fetch, status);
      if (s.fetches.get(digest) !== fetch) continue;
      if (verdict === 'renew') {
        reports.renew(digest);
        continue;
      }
      s.fetches.delete(digest);
      log.info({ digest, bytes: fetch.offset, completed: fetch.completedMs !== undefined }, 'fetch from the upstream no longer coordinated from here');
      reports.drop(digest);
    }
    if (unstarted) s.options.onUnstarted?.();
  } finally {
    s.ticking = false;
    schedule(s);
  }
}

function schedule(s: FetchesState): void {
  clearTimeout(s.timer);
  s.timer = undefined;
  if (s.closed || s.fetches.size === 0) return;
  s.timer = setTimeout(() => void tick(s), s.tickMs);
  s.timer.unref();
}

export function createLocalFetches(options: LocalFetchesOptions): LocalFetches {
  const s: FetchesState = {
    options,
    now: options.nowMs ?? Date.now,
    stallMs: options.stallMs ?? 5000,
    tickMs: options.tickMs ?? 1000,
    graceMs: options.completeGraceMs ?? 30_000,
    fetches: new Map(),
    offsets: new Map(),
    lastNodeGrowthMs: 0,
    timer: undefined,
    ticking: false,
    closed: false,
  };
  return {
    start(digest) {
      const previous = s.fetches.get(digest);
      if (previous !== undefined && previous.completedMs === undefined) return;
      s.fetches.set(digest, { lastGrowthMs: s.now(), offset: 0, completedMs: undefined });
      if (s.timer === undefined && !s.ticking) schedule(s);
    },
    has: (digest) => s.fetches.has(digest),
    async ingestOf(digest) {
      if (!s.fetches.has(digest)) return undefined;
      const status = (await options.ingests.listIngests()).find((candidate) => isIngestOf(candidate, digest));
      return status === undefined ? undefined : { ref: status.ref, total: status.total };
    },
    size: () => s.fetches.size,
    close() {
      s.closed = true;
      clearTimeout(s.timer);
      s.fetches.clear();
    },
  };
}
