// Cold rollouts, the asking side: a blob GET from this node's containerd that
// neither the node nor any holder in the index can serve asks the digest's
// coordinator (coordinator.ts: rendezvous over the ready agents) who fetches
// it. The answer is one of:
//
// - this agent (nobody was fetching it): the digest becomes a local fetch
//   (local-fetches.ts), the agent answers 404 and its containerd goes to the
//   upstream, while peers may stream the blob from its ingest;
// - another agent: the peer source streams the blob from that agent
//   (internal/peer, source `peer-fetch`), verified as every peer blob;
// - no answer within the coordinator timeout: as if nobody were fetching
//   (404, upstream); the fetch is still tracked here, and its first renew
//   makes the coordinator record it.
//
// When the coordinator is this agent, the records are asked in memory. The
// same rendezvous routes the local fetches' renews and drops, so a renew
// reaches the digest's coordinator of the moment: a new coordinator learns of
// a fetch within one renew after the membership changed.
import type { Logger } from '../log/logger.ts';
import type { Candidate } from '../peer/client.ts';
import type { CoordinatorClient } from './client.ts';
import type { CoordinatorPicker } from './coordinator.ts';
import { createLocalFetches, type LocalFetches, type LocalFetchesOptions } from './local-fetches.ts';
import type { FetchRecords } from './records.ts';
import { errorMessage } from '../errors/message.ts';

export interface CoalescerOptions {
  /** This agent's pod name. */
  self: string;
  /** The ready agents' names, this one included when its endpoint is ready. */
  members(): Iterable<string>;
  /** How to reach a ready peer; undefined when it is not one. */
  candidate(name: string): Candidate | undefined;
  pick: CoordinatorPicker;
  /** This agent's records, as the coordinator of its digests. */
  records: FetchRecords;
  client: CoordinatorClient;
  /** The local fetches' settings; they report to the digests' coordinators through this coalescer. */
  fetches: Omit<LocalFetchesOptions, 'reports'>;
  log: Logger;
}

export interface CoalesceStats {
  /** Asks answered "fetch it yourself" (this node's containerd goes upstream). */
  fetch: number;
  /** Asks answered with another agent's fetch to stream from. */
  follow: number;
  /** Asks that got no answer in time, or a bad one (treated as "nobody is fetching"). */
  unanswered: number;
}

export interface Coalescer {
  /**
   * The peer whose fetch of `digest` to stream from, or undefined: this
   * node's containerd fetches it from the upstream (answer 404). `failed`: a
   * fetcher this agent could not stream from, not to be named again.
   */
  follow(digest: string, failed?: string): Promise<Candidate | undefined>;
  /** The blobs this node's containerd fetches from the upstream for the others. */
  readonly fetches: LocalFetches;
  stats(): CoalesceStats;
  close(): void;
}

interface CoalescerState {
  readonly options: CoalescerOptions;
  readonly stats: CoalesceStats;
  readonly fetches: LocalFetches;
}

/** The digest's coordinator now: this agent (`self`), a ready peer, or undefined (no ready agent known). */
function coordinatorOf(s: CoalescerState, digest: string): 'self' | Candidate | undefined {
  const { options } = s;
  const name = options.pick(digest, options.members());
  if (name === undefined) return undefined;
  return name === options.self ? 'self' : options.candidate(name);
}

async function ask(s: CoalescerState, digest: string, failed: string | undefined): Promise<string | undefined> {
  const { options } = s;
  const coordinator = coordinatorOf(s, digest);
  if (coordinator === undefined) return undefined;
  if (coordinator === 'self') return options.records.ask(digest, options.self, failed);
  try {
    return await options.client.ask(coordinator, digest, failed);
  } catch (err) {
    s.stats.unanswered++;
    options.log.info({ digest, coordinator: coordinator.name, reason: errorMessage(err) }, 'coordinator did not answer: fetching from the upstream');
    return undefined;
  }
}

async function follow(s: CoalescerState, digest: string, failed: string | undefined): Promise<Candidate | undefined> {
  const { options } = s;
  const fetcher = await ask(s, digest, failed);
  if (fetcher === undefined || fetcher === options.self) {
    if (fetcher !== undefined) s.stats.fetch++;
    s.fetches.start(digest);
    return undefined;
  }
  const candidate = options.candidate(fetcher);
  if (candidate === undefined) {
    // A fetcher this agent does not know as ready (yet): ask once more, without it; then fetch it here.
    if (failed === undefined) return follow(s, digest, fetcher);
    s.fetches.start(digest);
    return undefined;
  }
  s.stats.follow++;
  return candidate;
}

function report(s: CoalescerState, digest: string, kind: 'renew' | 'drop'): void {
  const { options } = s;
  const coordinator = coordinatorOf(s, digest);
  if (coordinator === undefined) return;
  if (coordinator === 'self') {
    options.records[kind](digest, options.self);
    return;
  }
  options.client[kind](coordinator, digest).catch((err: unknown) => {
    options.log.debug({ digest, coordinator: coordinator.name, kind, reason: errorMessage(err) }, 'coordinator not told of a fetch');
  });
}

export function createCoalescer(options: CoalescerOptions): Coalescer {
  // The local fetches report through `s`, which holds them: their reports come on later ticks, once `s` is there.
  const s: CoalescerState = {
    options,
    stats: { fetch: 0, follow: 0, unanswered: 0 },
    fetches: createLocalFetches({
      ...options.fetches,
      reports: { renew: (digest) => report(s, digest, 'renew'), drop: (digest) => report(s, digest, 'drop') },
    }),
  };
  const { fetches } = s;
  return {
    follow: (digest, failed) => follow(s, digest, failed),
    fetches,
    stats: () => ({ ...s.stats }),
    close: () => fetches.close(),
  };
}
