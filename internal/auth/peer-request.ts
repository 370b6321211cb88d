// Requests from one agent to another carry a marker header. The registry
// answers a marked request from the node's own content only and never asks
// peers in turn, so a request can never travel in a loop between agents.
// It lives in auth, the lowest of the three folders that use it: the marker
// is also the signed sender's name (sign.ts, verify.ts), the peer client
// sends it, and the registry (admission, routes) reads it.
import type { IncomingHttpHeaders } from 'node:http';

/** The marker header (lower case, as Node presents request headers). */
export const PEER_REQUEST_HEADER = 'x-mirra-peer';
export const PEER_REQUEST_VALUE = '1';

/**
 * A Kubernetes object name (RFC 1123 subdomain). An agent goes by its pod's
 * name: as the marker's signed sender, as `from` in peer requests, and in the
 * index's answers; the agent's flags name pods and Services by it too.
 */
export const KUBERNETES_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** True when the request came from another agent (any value of the marker counts). */
export function isPeerRequest(headers: IncomingHttpHeaders): boolean {
  return headers[PEER_REQUEST_HEADER] !== undefined;
}
