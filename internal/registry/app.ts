// createRegistryApp: the Fastify app of the OCI distribution read API. The
// concerns are installed on the root instance in this order (hook order
// matters): access log, load shedding, method guard + routes, error handlers.
// Fastify's logger is off (so no request logging of its own): the access log
// and the error handler log through the `{ component: 'registry' }` child.
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { ContentStore } from '../oci/store.ts';
import { createAccessLog, installAccessLog, type AccessLine } from './access-log.ts';
import { answerClientError, answerConnect, frameworkErrorResponse } from './early-errors.ts';
import { sendOciError, toOciError } from './errors.ts';
import { installHealthRoutes } from './health.ts';
import { createPolicy } from './policy.ts';
import { installUnderPressure, type UnderPressureOptions } from './pressure.ts';
import { API_VERSION, API_VERSION_HEADER, installRoutes } from './routes.ts';
import { storeSource, type ContentSource } from './source.ts';

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
  /** Readiness for GET /readyz (default: always ready). */
  ready?: () => boolean;
  /** Called with every access-log line once its request is over (metrics); must not throw. */
  onRequest?: (line: Readonly<AccessLine>) => void;
}

/** Headers the error handler drops so an error answer does not look like content. */
const CONTENT_HEADERS = ['etag', 'docker-content-digest', 'content-range', 'accept-ranges'];

export function createRegistryApp(options: RegistryAppOptions): FastifyInstance {
  const log = options.logger.child({ component: 'registry' });
  const accessLog = createAccessLog(log, options.onRequest);
  const app = Fastify({
    logger: false,
    exposeHeadRoutes: false,
    return503OnClosing: true,
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

  installAccessLog(app, accessLog);
  if (options.underPressure !== undefined) installUnderPressure(app, options.underPressure);
  installHealthRoutes(app, options.ready ?? (() => true));
  installRoutes(app, {
    source: options.source ?? storeSource(options.store),
    localSource: options.localSource ?? storeSource(options.store),
    policy: createPolicy(options.mirroredRegistries, options.resolveTags, options.defaultRegistry ?? 'docker.io'),
    log,
  });

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
