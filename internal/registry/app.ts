// createRegistryApp: the Fastify app of the OCI distribution read API. The
// concerns are installed on the root instance in this order (hook order
// matters): access log, the 503 while closing, load shedding, method guard + routes, admission (peer
// auth, --local-only: admission.ts), error handlers.
// Fastify's logger is off (so no request logging of its own): the access log
// and the error handler log through the `{ component: 'registry' }` child.
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { AddressAllowList } from '../auth/allow.ts';
import type { PeerVerifier } from '../auth/verify.ts';
import type { RedirectVerifier } from '../auth/redirect.ts';
import { storeSource, type ContentSource } from '../content/source.ts';
import type { ContentStore } from '../oci/store.ts';
import { createAccessLog, installAccessLog, type AccessLine } from './access-log.ts';
import { installAdmission } from './admission.ts';
import { createBufferPool } from './buffer-pool.ts';
import { installConcurrencyLimits, type ConcurrencyLimits } from './concurrency.ts';
import { installClosingAnswer } from './drain.ts';
import { answerClientError, answerConnect, answerExpectation, frameworkErrorResponse } from './early-errors.ts';
import { sendOciError, toOciError } from './errors.ts';
import { installHealthRoutes } from './health.ts';
import { installFetchRoutes, type FetchRoutesOptions } from './routes-fetches.ts';
import { installIndexRoutes, type IndexRoutesOptions } from './routes-index.ts';
import { createPolicy } from './policy.ts';
import { installUnderPressure, type UnderPressureOptions } from './pressure.ts';
import { API_VERSION, API_VERSION_HEADER, installRoutes } from './routes.ts';
import { FILE_CHUNK_BYTES } from './send-file.ts';
import type { SendfileAddon } from './sendfile-addon.ts';
import { fastifyTimeoutOptions, resolveTimeouts, type ServerTimeouts } from './timeouts.ts';
import type { PullGate } from '../pullauth/gate.ts';

export interface RegistryAppOptions {
  store: ContentStore;
  logger: Logger;
  /** Registries whose content is served (e.g. `docker.io`); empty = all. */
  mirroredRegistries: readonly string[];
  /** Resolve tags to digests (else only requests by digest are served). */
  resolveTags: boolean;
  /** Registry of requests without the `ns` query parameter (default `docker.io`). */
  defaultRegistry?: string;
  underPressure?: UnderPressureOptions;
  /**
   * Where content comes from; default `storeSource(store)`. The seam for peer
   * routing: pass `chainSources([storeSource(store), peers])`.
   */
  source?: ContentSource;
  /**
   * What requests from peers (marked with PEER_REQUEST_HEADER) are answered
   * from; default `storeSource(store)`. Never include peers here: no loops.
   */
  localSource?: ContentSource;
  /** Why the node is not ready (GET /readyz answers 503 with it), or undefined when ready (default: always ready). */
  notReady?: () => string | undefined;
  /** Called with every access-log line once its request is over (metrics); must not throw. */
  onRequest?: (line: Readonly<AccessLine>) => void;
  /** Limits for slow clients (timeouts.ts); each one left out is its default. */
  timeouts?: Partial<ServerTimeouts>;
  /** Memory of the file fast path's buffers, shared by all blob streams (default FILE_BUFFER_POOL_BYTES). */
  fileBufferPoolBytes?: number;
  /** sendfile for local blobs on plain TCP sockets (sendfile-addon.ts); default none: copied through the buffers. */
  sendfile?: SendfileAddon;
  /** Requests and blob streams in progress at most, beyond which 503 (concurrency.ts); default none. */
  concurrency?: ConcurrencyLimits;
  /** Peer auth (internal/auth): requests with the peer marker or a signature header must verify, else 401. Default off. */
  peerVerifier?: PeerVerifier;
  /** Redirects signed by other agents (internal/auth/redirect.ts) are served as their peer requests; undefined: a signed redirect is an ordinary request. */
  redirectVerifier?: RedirectVerifier;
  /** --local-only: unsigned (containerd) requests only from these addresses, else 403. Default: anyone. */
  localClients?: AddressAllowList;
  /** This agent's fetch records as the coordinator of cold-rollout fetches (routes-fetches.ts); undefined: no coordination routes. */
  fetchRecords?: FetchRoutesOptions['records'];
  /** --verify-pull-access (pull-access.ts): the registries whose pull access is checked at the registry; undefined: none. */
  pullGate?: PullGate;
  /** This agent as a shard owner of the peer-to-peer index (routes-index.ts); undefined: no index routes. */
  indexOwner?: IndexRoutesOptions['owner'];
}

/**
 * 16 buffers of 1 MiB, shared: each stream borrows at most two at a time (one
 * under contention), one per chunk, and the kernel's socket buffers hold the
 * backlog. A private 2 x 1 MiB ring per stream would take 400 MiB at 200
 * streams. Measured with bench:load (200 streams, 2 cores): with 32 buffers,
 * 1.2-1.3 GB/s at a peak RSS of 228-232 MiB (2026-11); 64 gave no more bytes
 * for 272 MiB; 16 then moved a third fewer bytes, the manifest HEADs' gRPC
 * calls taking the CPU. Once manifests were answered from memory (issue 16,
 * 2026-12-06, bundled agent): 32 buffers 1287 MB/s at peak 139 MiB, 16
 * buffers 1254 MB/s at peak 123 MiB, so 16.
 */
export const FILE_BUFFER_POOL_BYTES = 16 * 1024 * 1024;

/** Headers the error handler drops so an error answer does not look like content. */
const CONTENT_HEADERS = ['etag', 'docker-content-digest', 'content-range', 'accept-ranges'];

/** The compilers of routes with schemas: mirra's routes have none, so these are never asked for a schema's validator. */
function noSchemaCompiler(): () => never {
  return () => {
    throw new Error('mirra routes declare no schemas');
  };
}

export function createRegistryApp(options: RegistryAppOptions): FastifyInstance {
  const log = options.logger.child({ component: 'registry' });
  const accessLog = createAccessLog(log, options.onRequest);
  const app = Fastify({
    logger: false,
    exposeHeadRoutes: false,
    // Requests during close: installClosingAnswer's OCI 503 instead of Fastify's plain JSON.
    return503OnClosing: false,
    // No route declares a schema: Fastify's default compilers would load ajv and
    // fast-json-stringify into every agent for nothing (issue 16: idle RSS).
    schemaController: { compilersFactory: { buildValidator: noSchemaCompiler, buildSerializer: noSchemaCompiler } },
    ...fastifyTimeoutOptions(resolveTimeouts(options.timeouts)),
    // Malformed URLs (bad percent-encoding) never reach a route: answer with an OCI error too.
    frameworkErrors: (err, request, reply) => {
      accessLog.begin(request, reply);
      reply.header(API_VERSION_HEADER, API_VERSION);
      sendOciError(reply, frameworkErrorResponse(err, request.method, request.url));
    },
    // Requests Node's HTTP parser rejects (bad method, oversized headers): OCI bodies as well.
    clientErrorHandler: answerClientError,
  });
  app.server.on('connect', answerConnect);
  app.server.on('checkExpectation', answerExpectation);

  installAccessLog(app, accessLog);
  installClosingAnswer(app);
  if (options.underPressure !== undefined) installUnderPressure(app, options.underPressure);
  if (options.concurrency !== undefined) installConcurrencyLimits(app, options.concurrency);
  installHealthRoutes(app, options.notReady ?? (() => undefined));
  installRoutes(app, {
    source: options.source ?? storeSource(options.store),
    localSource: options.localSource ?? storeSource(options.store),
    policy: createPolicy(options.mirroredRegistries, options.resolveTags, options.defaultRegistry ?? 'docker.io'),
    log,
    pullGate: options.pullGate,
    fileBuffers: createBufferPool({
      bufferBytes: FILE_CHUNK_BYTES,
      maxBuffers: Math.max(1, Math.floor((options.fileBufferPoolBytes ?? FILE_BUFFER_POOL_BYTES) / FILE_CHUNK_BYTES)),
    }),
    sendfile: options.sendfile,
  });
  // After the routes' method guard (405 first), before any content is looked at.
  installAdmission(app, { peerVerifier: options.peerVerifier, redirectVerifier: options.redirectVerifier, localClients: options.localClients, log });
  if (options.fetchRecords !== undefined) installFetchRoutes(app, { records: options.fetchRecords, peerVerifier: options.peerVerifier, log });
  if (options.indexOwner !== undefined) {
    installIndexRoutes(app, { owner: options.indexOwner, peerVerifier: options.peerVerifier, localClients: options.localClients, log });
  }

  app.setNotFoundHandler((request, reply) => {
    sendOciError(reply, toOciError({ statusCode: 404, code: 'FST_ERR_NOT_FOUND' }));
  });
  app.setErrorHandler((err, request, reply) => {
    const response = toOciError(err);
    if (response.internal) log.warn({ err, url: request.url }, 'request failed');
    for (const header of CONTENT_HEADERS) reply.removeHeader(header);
    sendOciError(reply, response);
  });
  return app;
}
