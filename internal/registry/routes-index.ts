// The owner's end of the peer-to-peer index on the registry port (the wire is
// in internal/owners/protocol.ts):
//
// - POST /mirra/v1/index: a holder pushes its keys. Peers only: the request
//   must carry the peer marker, name its sender in `from`, and with peer auth
//   on be signed by that sender; `sum` must be the body's SHA-256, which the
//   signature covers. 401 / 400 otherwise, as OCI error bodies.
// - GET /mirra/v1/holders/<key>: who holds a key. Peers ask it signed (with
//   auth on) like any peer request; an unsigned ask is a person's (`mirra
//   locate`, through the API server's pods/proxy) and is admitted like
//   containerd's requests (with --local-only: listed addresses only). It
//   tells which agents hold a key whose hash the asker already knows (the
//   first version's pod annotations told that to anyone who could read pods).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AddressAllowList } from '../auth/allow.ts';
import { isPeerRequest, KUBERNETES_NAME } from '../auth/peer-request.ts';
import { hasPeerHeaders, type PeerVerifier } from '../auth/verify.ts';
import { bodySum } from '../owners/client.ts';
import type { OwnerService } from '../owners/owner.ts';
import {
  decodeEntries,
  FROM_PARAM,
  HOLDERS_PATH,
  INDEX_CONTENT_TYPE,
  INDEX_PATH,
  IndexProtocolError,
  MAX_PUSH_BYTES,
  parseKeyHex,
  SUM_PARAM,
  ZONE_PARAM,
} from '../owners/protocol.ts';
import { RegistryError } from './errors.ts';
import { verifiedSigner } from './peer-signer.ts';

export interface IndexRoutesOptions {
  owner: Pick<OwnerService, 'receive' | 'holders' | 'instance'>;
  peerVerifier?: PeerVerifier;
  localClients?: AddressAllowList;
  log: Logger;
}

/** A zone label value (63 characters of a label value, or a prefixed one). */
const ZONE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,125}[A-Za-z0-9])?$/;

function query(request: FastifyRequest, name: string): string | undefined {
  const value = (request.query as Record<string, unknown>)[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new RegistryError('NAME_INVALID', { reason: `${name} query parameter given more than once` });
  return value;
}

/** The verified sender of a signed request (auth on), or the `from` it names (auth off); throws 401 on a bad signature. */
function sender(options: IndexRoutesOptions, request: FastifyRequest): string | undefined {
  const from = query(request, FROM_PARAM);
  if (from !== undefined && !KUBERNETES_NAME.test(from)) throw new RegistryError('NAME_INVALID', { reason: `invalid ${FROM_PARAM} query parameter` });
  if (options.peerVerifier === undefined || !hasPeerHeaders(request.headers)) return from;
  return verifiedSigner(options.peerVerifier, request, from);
}

function admitPush(options: IndexRoutesOptions, request: FastifyRequest): string {
  if (!isPeerRequest(request.headers)) throw new RegistryError('DENIED', { reason: 'index pushes are for peers only' });
  if (options.peerVerifier !== undefined && !hasPeerHeaders(request.headers)) throw new RegistryError('UNAUTHORIZED', { reason: 'unsigned push' });
  const from = sender(options, request);
  if (from === undefined) throw new RegistryError('NAME_INVALID', { reason: `missing ${FROM_PARAM} query parameter` });
  const body = request.body;
  if (!Buffer.isBuffer(body)) throw new RegistryError('INDEX_INVALID', { reason: `the body must be ${INDEX_CONTENT_TYPE}` });
  if (query(request, SUM_PARAM) !== bodySum(body)) throw new RegistryError('DIGEST_INVALID', { reason: `${SUM_PARAM} is not the SHA-256 of the body` });
  return from;
}

function admitLookup(options: IndexRoutesOptions, request: FastifyRequest): void {
  // Auth off: a marked request is a peer's (as on /v2/, admission.ts), answered whatever --local-only says.
  if (options.peerVerifier === undefined && isPeerRequest(request.headers)) return;
  const signed = sender(options, request) !== undefined && options.peerVerifier !== undefined && hasPeerHeaders(request.headers);
  if (signed || options.localClients === undefined) return;
  if (!options.localClients.allows(request.socket.remoteAddress)) {
    throw new RegistryError('DENIED', { reason: 'this agent answers unsigned lookups to its own node only (--local-only)' });
  }
}

export function installIndexRoutes(app: FastifyInstance, options: IndexRoutesOptions): void {
  app.addContentTypeParser(INDEX_CONTENT_TYPE, { parseAs: 'buffer', bodyLimit: MAX_PUSH_BYTES }, (request, body, done) => done(null, body));
  app.post(INDEX_PATH, { bodyLimit: MAX_PUSH_BYTES }, async (request, reply) => {
    if (request.accessLog) request.accessLog.handler = 'index';
    const from = admitPush(options, request);
    let resend: number[];
    try {
      resend = options.owner.receive(from, decodeEntries(request.body as Buffer));
    } catch (err) {
      if (err instanceof IndexProtocolError) throw new RegistryError('INDEX_INVALID', { reason: err.message });
      throw err;
    }
    reply.header('content-type', 'application/json; charset=utf-8').send(JSON.stringify({ instance: options.owner.instance, resend }));
  });
  app.get(`${HOLDERS_PATH}:key`, async (request, reply) => {
    if (request.accessLog) request.accessLog.handler = 'holders';
    admitLookup(options, request);
    const raw = (request.params as Record<string, unknown>).key;
    let key: number;
    try {
      key = parseKeyHex(typeof raw === 'string' ? raw : '');
    } catch (err) {
      throw new RegistryError('NAME_INVALID', { reason: (err as Error).message });
    }
    const zone = query(request, ZONE_PARAM);
    if (zone !== undefined && !ZONE.test(zone)) throw new RegistryError('NAME_INVALID', { reason: `invalid ${ZONE_PARAM} query parameter` });
    reply.header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(options.owner.holders(key, zone)));
  });
}
