// The agent's metrics: every family on its own registry, named with its unit;
// the scrape parses; the scrape-time metrics follow the snapshots given to
// readFrom() (peer source, directory, index, coalescing); the publish hooks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createPeerStats } from '../peer/stats.ts';
import { parseExposition, sumSamples } from '../../tests/support/exposition.ts';
import { createMetrics, METRIC_PREFIX, type IndexMetricsStats } from './metrics.ts';
import { publishHooks } from './record.ts';
import { INDEX_FAMILIES } from '../../tests/support/index-metrics.ts';

/** Units a metric name may end with: a base unit, or a count of a thing. */
const UNIT_SUFFIXES = ['_total', '_seconds', '_bytes', '_ratio', '_keys', 'peers', '_fetches', '_shards', '_postings'];

/** An index's stats: every number distinct, to see each one land where it belongs. */
const INDEX_STATS: IndexMetricsStats = {
  keys: 2013,
  ownedShards: 51,
  postings: 4120,
  pushesReceived: 80,
  lookupsAnswered: 15,
  pushes: 40,
  pushFailures: 3,
  fullShards: 64,
  deltaShards: 12,
  resends: 2,
  lookups: 10,
  cacheHits: 4,
  secondAsks: 1,
  ownerFailures: 1,
};

test('every metric is on the agent registry, named mirra_* with its unit', async () => {
  const metrics = createMetrics();
  const types = parseExposition(await metrics.registry.metrics()).types;
  const families = [...types].map(([name, type]) => ({ name, type }));
  assert.ok(families.length > 20, 'process and Node.js metrics included');
  for (const family of families) {
    assert.ok(family.name.startsWith(METRIC_PREFIX), family.name);
    if (family.type === 'counter') assert.ok(family.name.endsWith('_total'), `counter ${family.name} ends with _total`);
    else assert.ok(!family.name.endsWith('_total'), `${family.type} ${family.name} must not end with _total`);
  }
  const own = families.filter((f) => !/^mirra_(process_|nodejs_)/.test(f.name));
  assert.equal(own.length, 33);
  for (const family of own) {
    assert.ok(
      UNIT_SUFFIXES.some((unit) => family.name.endsWith(unit)),
      `${family.name} names its unit`,
    );
  }
  const names = new Set(families.map((f) => f.name));
  for (const name of [
    'mirra_http_requests_total',
    'mirra_http_request_duration_seconds',
    'mirra_http_response_bytes_total',
    'mirra_resolve_total',
    'mirra_peer_hedges_total',
    'mirra_peer_resumes_total',
    'mirra_peer_digest_mismatches_total',
    'mirra_peer_penalties_total',
    'mirra_peers',
    ...INDEX_FAMILIES,
    'mirra_publish_duration_seconds',
    'mirra_publish_failures_total',
    'mirra_nodejs_eventloop_lag_seconds',
    'mirra_nodejs_eventloop_lag_p99_seconds',
  ]) {
    assert.ok(names.has(name), `declares ${name}`);
  }
  for (const gone of ['mirra_annotation_bytes', 'mirra_summary_false_positive_ratio', 'mirra_summary_degraded_total']) {
    assert.ok(!names.has(gone), `${gone} went with the summary annotations`);
  }
});

test('two agents in one process have separate registries', async () => {
  const a = createMetrics();
  const b = createMetrics();
  a.publishFailures.inc();
  a.readFrom({ index: () => ({ ...INDEX_STATS, keys: 5 }) });
  const scrapeB = parseExposition(await b.registry.metrics());
  assert.equal(sumSamples(scrapeB, 'mirra_publish_failures_total'), 0);
  assert.equal(sumSamples(scrapeB, 'mirra_advertised_keys'), 0);
  const scrapeA = parseExposition(await a.registry.metrics());
  assert.equal(sumSamples(scrapeA, 'mirra_publish_failures_total'), 1);
  assert.equal(sumSamples(scrapeA, 'mirra_advertised_keys'), 5);
});

test('the scrape parses: every sample has a TYPE and HELP, histograms have buckets', async () => {
  const metrics = createMetrics();
  metrics.publishDuration.observe(1.5);
  const text = await metrics.registry.metrics();
  const scrape = parseExposition(text);
  assert.ok(scrape.samples.length > 50);
  for (const sample of scrape.samples) {
    const family = sample.name.replace(/_(bucket|sum|count)$/, '');
    const type = scrape.types.get(sample.name) ?? scrape.types.get(family);
    assert.ok(type !== undefined, `${sample.name} has a TYPE`);
    assert.ok(scrape.help.has(sample.name) || scrape.help.has(family), `${sample.name} has HELP`);
  }
  assert.equal(scrape.types.get('mirra_publish_duration_seconds'), 'histogram');
  assert.equal(sumSamples(scrape, 'mirra_publish_duration_seconds_count'), 1);
  assert.equal(sumSamples(scrape, 'mirra_publish_duration_seconds_bucket', { le: '2' }), 1);
  assert.equal(sumSamples(scrape, 'mirra_publish_duration_seconds_bucket', { le: '1' }), 0);
  assert.equal(sumSamples(scrape, 'mirra_publish_duration_seconds_bucket', { le: '+Inf' }), 1);
  const lag = scrape.samples.find((s) => s.name === 'mirra_nodejs_eventloop_lag_p99_seconds');
  assert.ok(lag !== undefined && lag.value >= 0, 'event-loop delay reported');
});

test('scrape-time metrics follow the snapshots they read', async () => {
  const metrics = createMetrics();
  const before = parseExposition(await metrics.registry.metrics());
  assert.equal(sumSamples(before, 'mirra_peer_hedges_total'), 0, 'zero while peer-to-peer is off');
  assert.equal(before.samples.filter((s) => s.name === 'mirra_peers').length, 0, 'no peer gauge without a directory');

  const peerStats = createPeerStats();
  const directory = new Map([
    ['a', { ready: true }],
    ['b', { ready: false }],
    ['c', { ready: true }],
  ]);
  metrics.readFrom({ peerSource: () => ({ ...peerStats }), peerDirectory: () => directory });
  peerStats.hedges = 4;
  peerStats.resumes = 2;
  peerStats.digestMismatches = 1;
  peerStats.hits = 7;
  peerStats.noCandidates = 5;
  peerStats.streamsLimited = 3;
  let scrape = parseExposition(await metrics.registry.metrics());
  assert.equal(sumSamples(scrape, 'mirra_peer_hedges_total'), 4);
  assert.equal(sumSamples(scrape, 'mirra_peer_resumes_total'), 2);
  assert.equal(sumSamples(scrape, 'mirra_peer_digest_mismatches_total'), 1);
  assert.equal(sumSamples(scrape, 'mirra_peer_lookups_total', { result: 'hit' }), 7);
  assert.equal(sumSamples(scrape, 'mirra_peer_lookups_total', { result: 'no_candidates' }), 5);
  assert.equal(sumSamples(scrape, 'mirra_peer_lookups_total', { result: 'streams_limited' }), 3);
  assert.equal(sumSamples(scrape, 'mirra_peers', { state: 'known' }), 3, 'every agent with an endpoint');
  assert.equal(sumSamples(scrape, 'mirra_peers', { state: 'ready' }), 2);
  assert.deepEqual([...new Set(scrape.samples.filter((s) => s.name === 'mirra_peers').map((s) => s.labels['state']))].sort(), ['known', 'ready']);

  peerStats.hedges = 6;
  directory.delete('a');
  scrape = parseExposition(await metrics.registry.metrics());
  assert.equal(sumSamples(scrape, 'mirra_peer_hedges_total'), 6, 'moves with the snapshot, not added twice');
  assert.equal(sumSamples(scrape, 'mirra_peers', { state: 'known' }), 2);
  assert.equal(sumSamples(scrape, 'mirra_peers', { state: 'ready' }), 1);
});

test('cold-rollout coordination: asks, answers, fetches, ingest bytes and coalesced streams', async () => {
  const metrics = createMetrics();
  const before = parseExposition(await metrics.registry.metrics());
  assert.equal(before.samples.filter((s) => s.name === 'mirra_upstream_fetches').length, 0, 'no gauge while coordination is off');
  const peerStats = createPeerStats();
  peerStats.coalesced = 4;
  peerStats.yielded = 1;
  peerStats.redirects = 7;
  peerStats.redirectsAskedAgain = 2;
  metrics.readFrom({
    peerSource: () => ({ ...peerStats }),
    coalesce: () => ({ fetch: 2, follow: 5, unanswered: 1, records: 3, askedFetch: 6, askedFollow: 9, fetches: 2, ingestBytes: 4096 }),
  });
  const scrape = parseExposition(await metrics.registry.metrics());
  assert.equal(sumSamples(scrape, 'mirra_coordinator_asks_total', { outcome: 'fetch' }), 2);
  assert.equal(sumSamples(scrape, 'mirra_coordinator_asks_total', { outcome: 'follow' }), 5);
  assert.equal(sumSamples(scrape, 'mirra_coordinator_asks_total', { outcome: 'unanswered' }), 1);
  assert.equal(sumSamples(scrape, 'mirra_coordinator_answers_total', { outcome: 'follow' }), 9);
  assert.equal(sumSamples(scrape, 'mirra_upstream_fetches', { state: 'coordinated' }), 3);
  assert.equal(sumSamples(scrape, 'mirra_upstream_fetches', { state: 'local' }), 2);
  assert.equal(sumSamples(scrape, 'mirra_ingest_bytes_total'), 4096);
  assert.equal(sumSamples(scrape, 'mirra_coalesced_streams_total'), 4);
  assert.equal(sumSamples(scrape, 'mirra_follows_yielded_total'), 1);
  assert.equal(sumSamples(scrape, 'mirra_peer_redirects_total', { outcome: 'redirected' }), 7);
  assert.equal(sumSamples(scrape, 'mirra_peer_redirects_total', { outcome: 'asked_again' }), 2);
});

test('the index: its gauges and counters follow its stats at every scrape', async () => {
  const metrics = createMetrics();
  const before = parseExposition(await metrics.registry.metrics());
  for (const name of ['mirra_advertised_keys', 'mirra_index_owned_shards', 'mirra_index_postings', 'mirra_index_pushes_total', 'mirra_index_lookups_total']) {
    assert.equal(sumSamples(before, name), 0, `${name} is zero while peer-to-peer is off`);
  }

  let stats: IndexMetricsStats = INDEX_STATS;
  metrics.readFrom({ index: () => stats });
  let scrape = parseExposition(await metrics.registry.metrics());
  assert.equal(sumSamples(scrape, 'mirra_advertised_keys'), 2013);
  assert.equal(sumSamples(scrape, 'mirra_index_owned_shards'), 51);
  assert.equal(sumSamples(scrape, 'mirra_index_postings'), 4120);
  assert.equal(sumSamples(scrape, 'mirra_index_pushes_total', { result: 'ok' }), 37, 'pushes less failures');
  assert.equal(sumSamples(scrape, 'mirra_index_pushes_total', { result: 'failed' }), 3);
  assert.equal(sumSamples(scrape, 'mirra_index_pushed_shards_total', { op: 'full' }), 64);
  assert.equal(sumSamples(scrape, 'mirra_index_pushed_shards_total', { op: 'delta' }), 12);
  assert.equal(sumSamples(scrape, 'mirra_index_resends_total'), 2);
  assert.equal(sumSamples(scrape, 'mirra_index_lookups_total', { source: 'cache' }), 4);
  assert.equal(sumSamples(scrape, 'mirra_index_lookups_total', { source: 'owner' }), 6, 'lookups less cache hits');
  assert.equal(sumSamples(scrape, 'mirra_index_second_owner_asks_total'), 1);
  assert.equal(sumSamples(scrape, 'mirra_index_owner_failures_total'), 1);
  assert.equal(sumSamples(scrape, 'mirra_index_owner_requests_total', { kind: 'push' }), 80);
  assert.equal(sumSamples(scrape, 'mirra_index_owner_requests_total', { kind: 'lookup' }), 15);

  stats = { ...stats, keys: 2014, pushes: 41 };
  scrape = parseExposition(await metrics.registry.metrics());
  assert.equal(sumSamples(scrape, 'mirra_advertised_keys'), 2014);
  assert.equal(sumSamples(scrape, 'mirra_index_pushes_total', { result: 'ok' }), 38, 'moves with the snapshot, not added twice');
});

test('publishing the status annotations', async () => {
  const metrics = createMetrics();
  const hooks = publishHooks(metrics);
  hooks.onPublished(2300, 512);
  hooks.onPublished(100, 64);
  hooks.onFailure(new Error('boom'));
  const scrape = parseExposition(await metrics.registry.metrics());
  assert.equal(sumSamples(scrape, 'mirra_publish_duration_seconds_count'), 2);
  assert.equal(sumSamples(scrape, 'mirra_publish_duration_seconds_sum'), 2.4);
  assert.equal(sumSamples(scrape, 'mirra_publish_bytes_total'), 576);
  assert.equal(sumSamples(scrape, 'mirra_publish_failures_total'), 1);
});
