// The assertion an agent adds to its peer requests for content of a registry
// whose pull access is verified (--verify-pull-access): "I checked at the
// registry that the pull I serve may read this repository". It is a query
// parameter, so the peer signature (which covers the path and query) covers
// it; a peer serves such content only to requests that carry it. It trusts
// the agents that hold the peer key, not the pods: a compromised node can
// assert anything (docs/SECURITY.md).

/** The query parameter of the assertion (value `1`). */
export const VERIFIED_PARAM = 'mirra-verified';

/** Whether a request target (path and query) carries the assertion. */
export function carriesAssertion(url: string): boolean {
  const query = url.indexOf('?');
  return query >= 0 && new URLSearchParams(url.slice(query + 1)).get(VERIFIED_PARAM) === '1';
}
