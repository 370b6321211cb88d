// Every Prometheus metric of the agent, declared in this one file on a registry
// of its own (never prom-client's global default registry): createMetrics()
// per agent, no module-level state. Names carry the `mirra_` prefix and their
// unit (`_seconds`, `_bytes`, `_total` for counters).
//
// Two kinds of metric:
// - recorded as things happen (record.ts): requests from the access log, tag
//   resolutions, the summary's size, publishing;
// - read at scrape time from other components' stats() snapshots, through the
//   functions given to readFrom(): the peer source's counters and the peers.
// collectDefaultMetrics adds the process and Node.js metrics with the same
// prefix, among them the event-loop delay (`mirra_nodejs_eventloop_lag_*`).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PeerSourceStats } from '../peer/stats.ts';
import type { PeerIndexStats } from '../routing/peer-index.ts';

export const METRIC_PREFIX = 'mirra_';

/** Where the scrape-time metrics come from; each is optional (peer-to-peer may be off). */
export interface MetricSnapshots {
  peerSource?(): PeerSourceStats;
  peerIndex?(): PeerIndexStats;
  /** The peer directory (pods with an endpoint), for the ready count. */
  peerDirectory?(): ReadonlyMap<string, { readonly ready: boolean }>;
  /** Cold-rollout coordination (internal/coalesce), when on. */
  coalesce?(): CoalesceMetricsStats;
}

/** What the cold-rollout coordination counts (internal/coalesce, read by internal/agent/p2p.ts). */
export interface CoalesceMetricsStats {
  /** This agent's asks: told to fetch from the upstream, told to stream from another node's fetch, or no answer in time. */
  fetch: number;
  follow: number;
  unanswered: number;
  /** As a coordinator: records held now, and the asks it answered by outcome. */
  records: number;
  askedFetch: number;
  askedFollow: number;
  /** Blobs this node's containerd fetches for the others now (or completed within the grace period). */
  fetches: number;
  /** Bytes sent to peers from ingests in progress. */
  ingestBytes: number;
}

export interface Metrics {
  readonly registry: Registry;
  /** `source`: local | peer | miss (a 404 for a manifest or blob); `from`: peer (an agent asked) | client. */
  readonly httpRequests: Counter<'handler' | 'method' | 'status' | 'source' | 'from'>;
  readonly httpRequestDuration: Histogram<'handler' | 'source'>;
  readonly httpResponseBytes: Counter<'handler' | 'source' | 'from'>;
  /** Responses cut short (client gone or the body failed mid-stream). */
  readonly httpAborted: Counter<'handler' | 'source'>;
  /** Tag resolutions: `source` local | peer | none, `result` found | not_found | error. */
  readonly resolves: Counter<'source' | 'result'>;
  readonly advertisedKeys: Gauge;
  readonly annotationBytes: Gauge;
  readonly summaryFalsePositiveRatio: Gauge;
  readonly summaryDegraded: Counter;
  readonly publishDuration: Histogram;
  readonly publishBytes: Counter;
  readonly publishFailures: Counter;
  /** Adds snapshot functions read at every scrape (later calls add to or replace earlier ones). */
  readFrom(snapshots: MetricSnapshots): void;
}

/** What the functions registering one area of metrics need. */
interface MetricsContext {
  readonly registers: Registry[];
  /** Filled by readFrom(); read by the scrape-time metrics at every scrape. */
  readonly snapshots: MetricSnapshots;
}

type RequestMetrics = Pick<Metrics, 'httpRequests' | 'httpRequestDuration' | 'httpResponseBytes' | 'httpAborted' | 'resolves'>;
type SummaryMetrics = Pick<Metrics, 'advertisedKeys' | 'annotationBytes' | 'summaryFalsePositiveRatio' | 'summaryDegraded'>;
type PublishMetrics = Pick<Metrics, 'publishDuration' | 'publishBytes' | 'publishFailures'>;

/** A counter set from a snapshot at every scrape: one value, or one per value of its label. */
interface SnapshotCounter<S> {
  /** Without the prefix. */
  name: string;
  help: string;
  /** The label, when the counter has one value per label value. */
  label?: string;
  values(stats: S): number | Readonly<Record<string, number>>;
}

/** The peer source's stats() counters, read at scrape time. */
const PEER_SOURCE_COUNTERS: readonly SnapshotCounter<PeerSourceStats>[] = [
  { name: 'peer_hedges_total', help: 'Second peer attempts started because the first peer was slow to answer.', values: (s) => s.hedges },
  { name: 'peer_resumes_total', help: 'Blob streams continued from another peer after a failure mid-stream.', values: (s) => s.resumes },
  { name: 'peer_digest_mismatches_total', help: 'Content from a peer that did not match its digest.', values: (s) => s.digestMismatches },
  { name: 'peer_attempt_failures_total', help: 'Failed peer attempts: connection errors, timeouts, bad answers.', values: (s) => s.failures },
  {
    name: 'peer_penalties_total',
    help: 'Peer faults (failed attempts, failures mid-body, wrong bytes) for which the peer was moved last for a while.',
    values: (s) => s.penalties,
  },
  { name: 'peer_false_positives_total', help: '404 answers from peers whose summary claimed the key.', values: (s) => s.misses },
  {
    name: 'peer_lookups_total',
    help: 'Misses on the local store handed to the peers, by result: hit, not_found (candidates, none had it), no_candidates (no network I/O), streams_limited (the limit of concurrent peer streams was reached: sent upstream).',
    label: 'result',
    values: (s) => ({ hit: s.hits, not_found: s.notFound, no_candidates: s.noCandidates, streams_limited: s.streamsLimited }),
  },
  {
    name: 'coalesced_streams_total',
    help: "Blob GETs streamed from another node's fetch in progress instead of the upstream.",
    values: (s) => s.coalesced,
  },
  {
    name: 'follows_yielded_total',
    help: "Streams from another node's fetch cut before their first byte so that containerd's download slot went to this node's own fetch (containerd asks again).",
    values: (s) => s.yielded,
  },
];

/** Cold-rollout coordination's counters (internal/coalesce), read at scrape time. */
const COALESCE_COUNTERS: readonly SnapshotCounter<CoalesceMetricsStats>[] = [
  {
    name: 'coordinator_asks_total',
    help: "This agent's asks to a blob's coordinator on a miss no holder could serve, by outcome: fetch (this node fetches it from the upstream), follow (streamed from another node's fetch in progress), unanswered (no answer within --coordinator-timeout: upstream).",
    label: 'outcome',
    values: (s) => ({ fetch: s.fetch, follow: s.follow, unanswered: s.unanswered }),
  },
  {
    name: 'coordinator_answers_total',
    help: 'Asks this agent answered as the coordinator of a blob, by outcome: fetch (the asker fetches it), follow (the asker streams it from the fetcher).',
    label: 'outcome',
    values: (s) => ({ fetch: s.askedFetch, follow: s.askedFollow }),
  },
  {
    name: 'ingest_bytes_total',
    help: "Bytes sent to peers from containerd's ingests in progress (blobs this node was still fetching from the upstream).",
    values: (s) => s.ingestBytes,
  },
];

function registerSnapshotCounter<S>(registers: Registry[], read: () => S | undefined, spec: SnapshotCounter<S>): void {
  const { label } = spec;
  new Counter<string>({
    name: METRIC_PREFIX + spec.name,
    help: spec.help,
    labelNames: label === undefined ? [] : [label],
    registers,
    collect() {
      const stats = read();
      this.reset();
      if (stats === undefined) return;
      const values = spec.values(stats);
      if (typeof values === 'number') this.inc(values);
      else if (label !== undefined) for (const [value, count] of Object.entries(values)) this.inc({ [label]: value }, count);
    },
  });
}

/** Cold-rollout coordination: asks by outcome, the coordinator's records and answers, bytes streamed from ingests. */
function registerCoalesceMetrics({ registers, snapshots }: MetricsContext): void {
  for (const spec of COALESCE_COUNTERS) registerSnapshotCounter(registers, () => snapshots.coalesce?.(), spec);
  new Gauge({
    name: `${METRIC_PREFIX}upstream_fetches`,
    help: 'Fetches from the upstream by state: coordinated (records this agent holds as a coordinator), local (blobs this node fetches for the others).',
    labelNames: ['state'] as const,
    registers,
    collect() {
      const stats = snapshots.coalesce?.();
      this.reset();
      if (stats === undefined) return;
      this.set({ state: 'coordinated' }, stats.records);
      this.set({ state: 'local' }, stats.fetches);
    },
  });
}

/** The process and Node.js metrics, with the same prefix. */
function registerProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
}

/** Counters whose values are the peer source's stats() counters, read at scrape time. */
function registerPeerSourceCounters({ registers, snapshots }: MetricsContext): void {
  for (const spec of PEER_SOURCE_COUNTERS) registerSnapshotCounter(registers, () => snapshots.peerSource?.(), spec);
}

function registerPeerStates({ registers, snapshots }: MetricsContext): void {
  new Gauge({
    name: `${METRIC_PREFIX}peers`,
    help: 'Peers by state: known (in the index), ready (endpoint ready), candidate (ready with a usable summary).',
    labelNames: ['state'] as const,
    registers,
    collect() {
      const index = snapshots.peerIndex?.();
      const directory = snapshots.peerDirectory?.();
      this.reset();
      if (index !== undefined) {
        this.set({ state: 'known' }, index.peers);
        this.set({ state: 'candidate' }, index.candidates);
      }
      if (directory !== undefined) {
        let ready = 0;
        for (const peer of directory.values()) if (peer.ready) ready++;
        this.set({ state: 'ready' }, ready);
      }
    },
  });
}

function createRequestMetrics({ registers }: MetricsContext): RequestMetrics {
  return {
    httpRequests: new Counter({
      name: `${METRIC_PREFIX}http_requests_total`,
      help: 'Registry requests by handler, method, status, source (local, peer, miss) and from (client, peer).',
      labelNames: ['handler', 'method', 'status', 'source', 'from'] as const,
      registers,
    }),
    httpRequestDuration: new Histogram({
      name: `${METRIC_PREFIX}http_request_duration_seconds`,
      help: 'Registry request duration until the response was closed, by handler and source.',
      labelNames: ['handler', 'source'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    }),
    httpResponseBytes: new Counter({
      name: `${METRIC_PREFIX}http_response_bytes_total`,
      help: 'Response body bytes sent by the registry, by handler, source and from (client, peer).',
      labelNames: ['handler', 'source', 'from'] as const,
      registers,
    }),
    httpAborted: new Counter({
      name: `${METRIC_PREFIX}http_aborted_total`,
      help: 'Registry responses closed before they were complete (client gone or body failed).',
      labelNames: ['handler', 'source'] as const,
      registers,
    }),
    resolves: new Counter({
      name: `${METRIC_PREFIX}resolve_total`,
      help: 'Tag resolutions by source (local, peer, none) and result (found, not_found, error).',
      labelNames: ['source', 'result'] as const,
      registers,
    }),
  };
}

function createSummaryMetrics({ registers }: MetricsContext): SummaryMetrics {
  return {
    advertisedKeys: new Gauge({
      name: `${METRIC_PREFIX}advertised_keys`,
      help: 'Keys (digests and image references) in the summary this agent advertises.',
      registers,
    }),
    annotationBytes: new Gauge({
      name: `${METRIC_PREFIX}annotation_bytes`,
      help: "Bytes of the summary annotations (names and values) on this agent's pod.",
      registers,
    }),
    summaryFalsePositiveRatio: new Gauge({
      name: `${METRIC_PREFIX}summary_false_positive_ratio`,
      help: 'Upper bound of the false-positive rate of the current summary (1 when saturated).',
      registers,
    }),
    summaryDegraded: new Counter({
      name: `${METRIC_PREFIX}summary_degraded_total`,
      help: 'Summaries that were over budget and degraded to a higher false-positive rate.',
      registers,
    }),
  };
}

function createPublishMetrics({ registers }: MetricsContext): PublishMetrics {
  return {
    publishDuration: new Histogram({
      name: `${METRIC_PREFIX}publish_duration_seconds`,
      help: 'Time from a change of the summary until it was on the pod (debounce included).',
      buckets: [0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 120],
      registers,
    }),
    publishBytes: new Counter({
      name: `${METRIC_PREFIX}publish_bytes_total`,
      help: 'Bytes of the merge patches sent to the Kubernetes API.',
      registers,
    }),
    publishFailures: new Counter({
      name: `${METRIC_PREFIX}publish_failures_total`,
      help: 'Failed reads or patches of the own pod while publishing the summary.',
      registers,
    }),
  };
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  const context: MetricsContext = { registers: [registry], snapshots: {} };
  // Registered in this order, which is the order of the scrape output.
  registerProcessMetrics(registry);
  registerPeerSourceCounters(context);
  registerPeerStates(context);
  registerCoalesceMetrics(context);
  return {
    registry,
    ...createRequestMetrics(context),
    ...createSummaryMetrics(context),
    ...createPublishMetrics(context),
    readFrom(more) {
      Object.assign(context.snapshots, more);
    },
  };
}
