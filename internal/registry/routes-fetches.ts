// The coordinator's end of a cold rollout (internal/coalesce): agents ask the
// coordinator of a digest who fetches it, renew their own fetch and drop it,
// on /mirra/v1/fetches/<digest> (POST, PUT, DELETE; the protocol is in
// internal/coalesce/protocol.ts and client.ts). Only peers may: the request
// must carry the peer marker, and with peer auth on be validly signed by the
// agent it names in `from` (401 otherwise, as on /v2/). containerd never
// comes here. Answers are small JSON, errors OCI bodies.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { isPeerRequest, KUBERNETES_NAME } from '../auth/peer-request.ts';
import type { PeerVerifier } from '../auth/verify.ts';
import type { FetchRecords } from '../coalesce/records.ts';
import { FAILED_PARAM, FETCHES_PATH, FROM_PARAM } from '../coalesce/protocol.ts';
import { parseDigest } from '../oci/digest.ts';
import { RegistryError } from './errors.ts';
import { verifiedSigner } from './peer-signer.ts';

export interface FetchRoutesOptions {
  records: Pick<FetchRecords, 'ask' | 'renew' | 'drop'>;
  peerVerifier?: PeerVerifier;
  log: Logger;
}

interface FetchRequest {
  digest: string;
  from: string;
  failed: string | undefined;
}

function param(request: FastifyRequest, name: string): string | undefined {
  const query = request.query as Record<string, unknown>;
  const value = query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !KUBERNETES_NAME.test(value)) throw new RegistryError('NAME_INVALID', { reason: `invalid ${name} query parameter` });
  return value;
}

/** The checked request: a peer's, signed by `from` when auth is on, for a valid digest. */
function admit(options: FetchRoutesOptions, request: FastifyRequest): FetchRequest {
  if (!isPeerRequest(request.headers)) throw new RegistryError('DENIED', { reason: 'fetch coordination is for peers only' });
  const from = param(request, FROM_PARAM);
  if (from === undefined) throw new RegistryError('NAME_INVALID', { reason: `missing ${FROM_PARAM} query parameter` });
  if (options.peerVerifier !== undefined) verifiedSigner(options.peerVerifier, request, from);
  const digest = (request.params as Record<string, unknown>).digest;
  if (typeof digest !== 'string' || parseDigest(digest) === undefined) throw new RegistryError('DIGEST_INVALID', { reason: 'invalid digest' });
  return { digest, from, failed: param(request, FAILED_PARAM) };
}

export function installFetchRoutes(app: FastifyInstance, options: FetchRoutesOptions): void {
  const url = `${FETCHES_PATH}:digest`;
  const handle = (act: (fetch: FetchRequest, reply: FastifyReply) => void) => async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.accessLog) request.accessLog.handler = 'fetches';
    act(admit(options, request), reply);
  };
  app.post(
    url,
    handle((fetch, reply) => {
      const fetcher = options.records.ask(fetch.digest, fetch.from, fetch.failed);
      options.log.debug({ digest: fetch.digest, asker: fetch.from, fetcher, failed: fetch.failed }, 'fetch coordinated');
      reply.header('content-type', 'application/json; charset=utf-8').send(JSON.stringify({ fetcher }));
    }),
  );
  app.put(
    url,
    handle((fetch, reply) => {
      options.records.renew(fetch.digest, fetch.from);
      reply.code(204).send();
    }),
  );
  app.delete(
    url,
    handle((fetch, reply) => {
      options.records.drop(fetch.digest, fetch.from);
      reply.code(204).send();
    }),
  );
}
