// Pull access of private images at the registry routes (--verify-pull-access,
// issue 15): for a registry whose access is verified, containerd's request is
// served only when internal/pullauth/gate.ts allows it (a 401 with the
// registry's own Bearer challenge sends containerd for a token first; a token
// the registry refused gets that 401 again, as from the registry; any other
// deny is a 404 and containerd goes to the registry), and a peer's request only
// when it carries the asking agent's signed assertion that it verified the
// pull (internal/pullauth/assertion.ts). Registries not listed are not
// touched.
import type { FastifyRequest } from 'fastify';
import { isPeerRequest } from '../auth/peer-request.ts';
import { carriesAssertion } from '../pullauth/assertion.ts';
import type { PullGate } from '../pullauth/gate.ts';
import { RegistryError } from './errors.ts';

export interface PullAsk {
  registry: string;
  name: string;
  kind: 'manifests' | 'blobs';
  reference: string;
}

/** Whether the request may be served, as `verified` (true: access verified, peers are asked with the assertion); throws the 401 or 404 otherwise. */
export async function admitPull(gate: PullGate | undefined, request: FastifyRequest, ask: PullAsk): Promise<boolean> {
  if (gate === undefined || !gate.verifies(ask.registry)) return false;
  const notFound = ask.kind === 'blobs' ? 'BLOB_UNKNOWN' : 'MANIFEST_UNKNOWN';
  if (isPeerRequest(request.headers)) {
    if (carriesAssertion(request.url)) return true;
    throw new RegistryError(notFound, { reason: 'pull access is verified for this registry, and the asking agent did not assert it' });
  }
  const authorization = request.headers.authorization;
  const decision = await gate.decide({ registry: ask.registry, repository: ask.name, kind: ask.kind, reference: ask.reference, authorization });
  if (request.accessLog) request.accessLog.pullAccess = decision.kind;
  switch (decision.kind) {
    case 'open':
      return false;
    case 'allow':
      return true;
    case 'challenge':
      throw new RegistryError(
        'UNAUTHORIZED',
        { reason: 'pull access to this repository is checked at its registry: get a token' },
        { 'www-authenticate': decision.header },
      );
    case 'deny':
      if (decision.challenge !== undefined) {
        throw new RegistryError('UNAUTHORIZED', { reason: `pull access not verified: ${decision.reason}` }, { 'www-authenticate': decision.challenge });
      }
      throw new RegistryError(notFound, { reason: `pull access not verified: ${decision.reason}` });
  }
}
