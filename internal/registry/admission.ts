// Who may use the read API (/v2/...), checked before any content is looked at:
//
// - A request that carries the peer marker or any signature header is a peer
//   request. With a verifier (peer auth on) it must be validly signed, fresh
//   and not replayed, else 401 UNAUTHORIZED (no WWW-Authenticate: there is no
//   token service to go to). Without one it is let through as before; either
//   way it is then answered from the node's own content only (routes.ts).
// - Any other request is containerd's, and may be answered from peers. With an
//   allow list (--local-only) it is served only to the listed addresses
//   (loopback, the node IP), else 403 DENIED: no open proxy for other pods.
//
// - A request whose URL carries a redirect signature (containerd sent here by
//   another agent with a 307, internal/auth/redirect.ts) must verify, else 401;
//   verified, it is a peer request from the signer.
//
// /healthz, /readyz and unknown paths are not affected.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AddressAllowList } from '../auth/allow.ts';
import { isPeerRequest, PEER_REQUEST_HEADER } from '../auth/peer-request.ts';
import { hasRedirectSignature, type RedirectVerifier } from '../auth/redirect.ts';
import { hasPeerHeaders, type PeerVerifier } from '../auth/verify.ts';
import { RegistryError } from './errors.ts';

export interface AdmissionOptions {
  /** Verifies signed peer requests; undefined: peer auth off. */
  peerVerifier?: PeerVerifier;
  /** Verifies signed redirects (containerd sent here by another agent, internal/auth/redirect.ts); undefined: none accepted. */
  redirectVerifier?: RedirectVerifier;
  /** Addresses allowed to make unsigned (containerd) requests; undefined: anyone. */
  localClients?: AddressAllowList;
  log: Logger;
}

const API_ROUTES = new Set(['/v2', '/v2/*']);
/** Addresses whose first refusal is a warning (a CNI showing the node from another address is worth one line each). */
const MAX_WARNED_ADDRESSES = 64;

/**
 * A redirect signed by another agent: containerd's request, on that agent's
 * behalf. Verified, it is a peer request from then on (the marker is set to
 * the signer), answered from this node's own content only; else 401.
 */
function admitRedirect(request: FastifyRequest, verifier: RedirectVerifier, done: (err?: Error) => void): void {
  const verdict = verifier.verify(request.raw.url ?? request.url);
  if (!verdict.ok) {
    done(new RegistryError('UNAUTHORIZED', { reason: `redirect: ${verdict.reason}` }));
    return;
  }
  request.raw.headers[PEER_REQUEST_HEADER] = verdict.peer;
  done();
}

export function installAdmission(app: FastifyInstance, options: AdmissionOptions): void {
  const { peerVerifier, redirectVerifier, localClients, log } = options;
  if (peerVerifier === undefined && localClients === undefined && redirectVerifier === undefined) return;
  const warned = new Set<string>();
  app.addHook('onRequest', (request, reply, done) => {
    if (!API_ROUTES.has(request.routeOptions.url ?? '')) {
      done();
      return;
    }
    if (redirectVerifier !== undefined && hasRedirectSignature(request.url)) {
      admitRedirect(request, redirectVerifier, done);
      return;
    }
    if (peerVerifier === undefined && isPeerRequest(request.headers)) {
      done(); // auth off: a marked request is served from local content only
      return;
    }
    // With auth on, any signature header makes a request a peer request: it has to verify.
    if (peerVerifier !== undefined && hasPeerHeaders(request.headers)) {
      const verdict = peerVerifier.verify({ method: request.method, url: request.raw.url ?? request.url, headers: request.headers });
      if (verdict.ok) {
        done();
        return;
      }
      log.debug({ reason: verdict.reason, remoteIp: request.socket.remoteAddress, url: request.url }, 'peer request refused');
      done(new RegistryError('UNAUTHORIZED', { reason: verdict.reason }));
      return;
    }
    if (localClients !== undefined && !localClients.allows(request.socket.remoteAddress)) {
      const remoteIp = request.socket.remoteAddress ?? '';
      if (!warned.has(remoteIp) && warned.size < MAX_WARNED_ADDRESSES) {
        warned.add(remoteIp);
        log.warn(
          { remoteIp, allowed: localClients.entries },
          'refused an unsigned request from a client that is not this node (--local-only); if it is the node itself, add its address to --local-clients',
        );
      } else {
        log.debug({ remoteIp, url: request.url }, 'request from a non-local client refused');
      }
      done(new RegistryError('DENIED', { reason: 'this agent serves unsigned requests to its own node only' }));
      return;
    }
    done();
  });
}
