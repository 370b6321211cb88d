// The check the peer-only routes share (fetch coordination, the index): a
// request's signature verifies, and it was signed by the agent it names in
// `from`, so that no agent can push keys or claim fetches in another's name.
import type { FastifyRequest } from 'fastify';
import type { PeerVerifier } from '../auth/verify.ts';
import { RegistryError } from './errors.ts';

/** The request's signer; 401 when its signature does not verify, or when it names another sender in `from`. */
export function verifiedSigner(verifier: PeerVerifier, request: FastifyRequest, from: string | undefined): string {
  const verdict = verifier.verify({ method: request.method, url: request.raw.url ?? request.url, headers: request.headers });
  if (!verdict.ok) throw new RegistryError('UNAUTHORIZED', { reason: verdict.reason });
  if (from !== undefined && verdict.peer !== from) throw new RegistryError('UNAUTHORIZED', { reason: `signed by ${verdict.peer}, not by ${from}` });
  return verdict.peer;
}
