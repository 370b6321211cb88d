// The metric families of the peer-to-peer index (internal/metrics/metrics.ts),
// for the tests that check an agent declares them: the unit test of the
// registry and the e2e test of a scrape.
export const INDEX_FAMILIES = [
  'mirra_advertised_keys',
  'mirra_index_owned_shards',
  'mirra_index_postings',
  'mirra_index_pushes_total',
  'mirra_index_pushed_shards_total',
  'mirra_index_resends_total',
  'mirra_index_lookups_total',
  'mirra_index_second_owner_asks_total',
  'mirra_index_owner_failures_total',
  'mirra_index_owner_requests_total',
] as const;
