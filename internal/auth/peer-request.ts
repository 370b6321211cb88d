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

/** True when the request came from another agent (any value of the marker counts). */
export function isPeerRequest(headers: IncomingHttpHeaders): boolean {
  return headers[PEER_REQUEST_HEADER] !== undefined;
}
