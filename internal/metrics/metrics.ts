// Every Prometheus metric of the agent, declared in this one file on a registry
// of its own (registry.ts, the agent's own metrics core, has no default
// registry): createMetrics() per agent, no module-level state. Names carry
// the `mirra_` prefix and their unit (`_seconds`, `_bytes`, `_total` for
// counters).
//
// Two kinds of metric:
// - recorded as things happen (record.ts): requests from the access log, tag
//   resolutions, publishing the status annotations;
// - read at scrape time from other components' stats() snapshots, through the
//   functions given to readFrom(): the peer source's counters, the peers, the
//   peer-to-peer index and the cold-rollout coordination.
// process-metrics.ts adds the process and Node.js metrics with the same
// prefix, among them the event-loop delay (`mirra_nodejs_eventloop_lag_*`).
import { Counter, Gauge } from './family.ts';
import { Histogram } from './histogram.ts';
import { registerProcessMetrics } from './process-metrics.ts';
import { Registry } from './registry.ts';
import type { PeerSourceStats } from '../peer/stats.ts';

export const METRIC_PREFIX = 'mirra_';

/** Where the scrape-time metrics come from; each is optional (peer-to-peer may be off). */
export interface MetricSnapshots {
  peerSource?(): PeerSourceStats;
  /** The peer-to-peer index (internal/owners). */
  index?(): IndexMetricsStats;
  /** The peer directory (agents with an endpoint), for the ready count. */
  peerDirectory?(): ReadonlyMap<string, { readonly ready: boolean }>;
  /** Cold-rollout coordination (internal/coalesce), when on. */
  coalesce?(): CoalesceMetricsStats;
}

/** What the peer-to-peer index counts (internal/owners, read by internal/agent/p2p.ts). */
export interface IndexMetricsStats {
  /** Keys this agent holds (and pushes to their owners). */
  keys: number;
  /** As an owner: shards owned now, (key, holder) pairs kept, pushes and lookups answered. */
  ownedShards: number;
  postings: number;
  pushesReceived: number;
  lookupsAnswered: number;
  /** As a holder: pushes sent by result, shards sent by kind, shards an owner asked for in full. */
  pushes: number;
  pushFailures: number;
  fullShards: number;
  deltaShards: number;
  resends: number;
  /** As an asker: lookups, of which answered from the cache; second owners asked; owners that failed to answer. */
  lookups: number;
  cacheHits: number;
  secondAsks: number;
  ownerFailures: number;
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
  readonly publishDuration: Histogram;
  readonly publishBytes: Counter;
  readonly publishFailures: Counter;
  /** Adds snapshot functions read at every scrape (later calls add to or replace earlier ones). */
  readFrom(snapshots: MetricSnapshots): void;
}

/** What the functions registering one area of metrics need. */
interface MetricsContext {
  readonly registry: Registry;
  /** Filled by readFrom(); read by the scrape-time metrics at every scrape. */
  readonly snapshots: MetricSnapshots;
}

type RequestMetrics = Pick<Metrics, 'httpRequests' | 'httpRequestDuration' | 'httpResponseBytes' | 'httpAborted' | 'resolves'>;
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
  { name: 'peer_false_positives_total', help: '404 answers from peers a shard owner named as holders of the key.', values: (s) => s.misses },
  {
    name: 'peer_lookups_total',
    help: 'Misses on the local store handed to the peers, by result: hit, not_found (candidates, none had it), no_candidates (no ready holder named by the owners), streams_limited (the limit of concurrent peer streams was reached: sent upstream).',
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
  {
    name: 'peer_redirects_total',
    help: "containerd's blob GETs answered with a redirect to the holder's agent (redirected), or streamed because the blob was asked for again soon after its redirect (asked_again: a failed, cut or retried pull).",
    label: 'outcome',
    values: (s) => ({ redirected: s.redirects, asked_again: s.redirectsAskedAgain }),
  },
];

/** The peer-to-peer index's counters (internal/owners), read at scrape time. */
const INDEX_COUNTERS: readonly SnapshotCounter<IndexMetricsStats>[] = [
  {
    name: 'index_pushes_total',
    help: "Pushes of this agent's keys to shard owners, by result (ok, failed: retried with backoff).",
    label: 'result',
    values: (s) => ({ ok: s.pushes - s.pushFailures, failed: s.pushFailures }),
  },
  {
    name: 'index_pushed_shards_total',
    help: 'Shards pushed to owners, by op: full (an owner new to the shard, restarted or asking), delta (a change).',
    label: 'op',
    values: (s) => ({ full: s.fullShards, delta: s.deltaShards }),
  },
  { name: 'index_resends_total', help: 'Shards an owner asked for in full (its digest did not match: a lost push).', values: (s) => s.resends },
  {
    name: 'index_lookups_total',
    help: 'Lookups of a missed key, by where the holders came from: cache (a recent answer), owner (asked).',
    label: 'source',
    values: (s) => ({ cache: s.cacheHits, owner: s.lookups - s.cacheHits }),
  },
  {
    name: 'index_second_owner_asks_total',
    help: "Lookups that asked the shard's second owner too (the first failed, was slow, or took the shard over lately).",
    values: (s) => s.secondAsks,
  },
  { name: 'index_owner_failures_total', help: 'Lookups an owner did not answer (error or timeout).', values: (s) => s.ownerFailures },
  {
    name: 'index_owner_requests_total',
    help: 'Requests this agent answered as a shard owner, by kind: push (a holder sent keys), lookup (an asker wanted holders).',
    label: 'kind',
    values: (s) => ({ push: s.pushesReceived, lookup: s.lookupsAnswered }),
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

function registerSnapshotCounter<S>(registry: Registry, read: () => S | undefined, spec: SnapshotCounter<S>): void {
  const { label } = spec;
  new Counter<string>({
    name: METRIC_PREFIX + spec.name,
    help: spec.help,
    labelNames: label === undefined ? [] : [label],
    registry,
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
function registerCoalesceMetrics({ registry, snapshots }: MetricsContext): void {
  for (const spec of COALESCE_COUNTERS) registerSnapshotCounter(registry, () => snapshots.coalesce?.(), spec);
  new Gauge({
    name: `${METRIC_PREFIX}upstream_fetches`,
    help: 'Fetches from the upstream by state: coordinated (records this agent holds as a coordinator), local (blobs this node fetches for the others).',
    labelNames: ['state'] as const,
    registry,
    collect() {
      const stats = snapshots.coalesce?.();
      this.reset();
      if (stats === undefined) return;
      this.set({ state: 'coordinated' }, stats.records);
      this.set({ state: 'local' }, stats.fetches);
    },
  });
}

/** Counters whose values are the peer source's stats() counters, read at scrape time. */
function registerPeerSourceCounters({ registry, snapshots }: MetricsContext): void {
  for (const spec of PEER_SOURCE_COUNTERS) registerSnapshotCounter(registry, () => snapshots.peerSource?.(), spec);
}

function registerPeerStates({ registry, snapshots }: MetricsContext): void {
  new Gauge({
    name: `${METRIC_PREFIX}peers`,
    help: 'Peers by state: known (an endpoint in the EndpointSlices), ready (endpoint ready: a member of the index).',
    labelNames: ['state'] as const,
    registry,
    collect() {
      const directory = snapshots.peerDirectory?.();
      this.reset();
      if (directory === undefined) return;
      let ready = 0;
      for (const peer of directory.values()) if (peer.ready) ready++;
      this.set({ state: 'known' }, directory.size);
      this.set({ state: 'ready' }, ready);
    },
  });
}

/** A gauge set from the index's stats at every scrape. */
function indexGauge(context: MetricsContext, name: string, help: string, value: (s: IndexMetricsStats) => number): void {
  new Gauge({
    name: METRIC_PREFIX + name,
    help,
    registry: context.registry,
    collect() {
      const stats = context.snapshots.index?.();
      this.reset();
      if (stats !== undefined) this.set(value(stats));
    },
  });
}

/** The peer-to-peer index: what this agent holds and owns, and its pushes and lookups. */
function registerIndexMetrics(context: MetricsContext): void {
  indexGauge(context, 'advertised_keys', 'Keys (digests and image references) this agent holds and pushes to their shard owners.', (s) => s.keys);
  indexGauge(context, 'index_owned_shards', 'Shards of the key space this agent owns now.', (s) => s.ownedShards);
  indexGauge(context, 'index_postings', '(key, holder) pairs this agent keeps as a shard owner.', (s) => s.postings);
  for (const spec of INDEX_COUNTERS) registerSnapshotCounter(context.registry, () => context.snapshots.index?.(), spec);
}

function createRequestMetrics({ registry }: MetricsContext): RequestMetrics {
  return {
    httpRequests: new Counter({
      name: `${METRIC_PREFIX}http_requests_total`,
      help: 'Registry requests by handler, method, status, source (local, peer, miss) and from (client, peer).',
      labelNames: ['handler', 'method', 'status', 'source', 'from'] as const,
      registry,
    }),
    httpRequestDuration: new Histogram({
      name: `${METRIC_PREFIX}http_request_duration_seconds`,
      help: 'Registry request duration until the response was closed, by handler and source.',
      labelNames: ['handler', 'source'] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registry,
    }),
    httpResponseBytes: new Counter({
      name: `${METRIC_PREFIX}http_response_bytes_total`,
      help: 'Response body bytes sent by the registry, by handler, source and from (client, peer).',
      labelNames: ['handler', 'source', 'from'] as const,
      registry,
    }),
    httpAborted: new Counter({
      name: `${METRIC_PREFIX}http_aborted_total`,
      help: 'Registry responses closed before they were complete (client gone or body failed).',
      labelNames: ['handler', 'source'] as const,
      registry,
    }),
    resolves: new Counter({
      name: `${METRIC_PREFIX}resolve_total`,
      help: 'Tag resolutions by source (local, peer, none) and result (found, not_found, error).',
      labelNames: ['source', 'result'] as const,
      registry,
    }),
  };
}

function createPublishMetrics({ registry }: MetricsContext): PublishMetrics {
  return {
    publishDuration: new Histogram({
      name: `${METRIC_PREFIX}publish_duration_seconds`,
      help: "Time from a change of the agent's status annotations until they were on the pod (the rate limit included).",
      buckets: [0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 120],
      registry,
    }),
    publishBytes: new Counter({
      name: `${METRIC_PREFIX}publish_bytes_total`,
      help: 'Bytes of the merge patches sent to the Kubernetes API.',
      registry,
    }),
    publishFailures: new Counter({
      name: `${METRIC_PREFIX}publish_failures_total`,
      help: 'Failed reads or patches of the own pod while publishing the status annotations.',
      registry,
    }),
  };
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  const context: MetricsContext = { registry, snapshots: {} };
  // Registered in this order, which is the order of the scrape output.
  registerProcessMetrics(registry, METRIC_PREFIX);
  registerPeerSourceCounters(context);
  registerPeerStates(context);
  registerIndexMetrics(context);
  registerCoalesceMetrics(context);
  return {
    registry,
    ...createRequestMetrics(context),
    ...createPublishMetrics(context),
    readFrom(more) {
      Object.assign(context.snapshots, more);
    },
  };
}
