// The read API's routes: one wildcard route for GET and HEAD under /v2/
// (names have any number of components, so the path is parsed by path.ts),
// dispatching to the base, manifest and blob handlers; every other method is
// 405 UNSUPPORTED before any body is read.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isPeerRequest } from '../auth/peer-request.ts';
import type { HandlerKind } from './access-log.ts';
import { RegistryError } from './errors.ts';
import { clip, parseRegistryPath, registryOf } from './path.ts';
import { serveBlob } from './routes-blobs.ts';
import { serveManifest } from './routes-manifests.ts';
import { admitPull } from './pull-access.ts';
import type { RouteDeps, RoutePolicy } from './policy.ts';

export const API_VERSION_HEADER = 'docker-distribution-api-version';
export const API_VERSION = 'registry/2.0';
export const ALLOWED_METHODS = 'GET, HEAD';

function setHandler(request: FastifyRequest, handler: HandlerKind): void {
  if (request.accessLog) request.accessLog.handler = handler;
}

function registryFor(request: FastifyRequest, policy: RoutePolicy): string {
  const registry = registryOf(request.url, policy.defaultRegistry);
  if (registry === undefined) throw new RegistryError('NAME_INVALID', { reason: 'invalid ns query parameter' });
  if (request.accessLog) request.accessLog.registry = registry;
  return registry;
}

async function dispatch(deps: RouteDeps, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const parsed = parseRegistryPath(request.url);
  switch (parsed.kind) {
    case 'base':
      setHandler(request, 'base');
      reply.header('content-type', 'application/json; charset=utf-8').send('{}');
      return;
    case 'unknown':
      throw new RegistryError('NAME_UNKNOWN', { reason: 'no such endpoint', path: clip(request.url) });
    case 'invalid':
      throw parsed.error;
    case 'manifest': {
      setHandler(request, 'manifest');
      const registry = registryFor(request, deps.policy);
      const verified = await admitPull(deps.pullGate, request, { registry, name: parsed.name, kind: 'manifests', reference: parsed.reference });
      const target = { registry, name: parsed.name, verified };
      return serveManifest(deps, request, reply, { target, reference: parsed.reference, byDigest: parsed.byDigest });
    }
    case 'blob': {
      setHandler(request, 'blob');
      const registry = registryFor(request, deps.policy);
      const verified = await admitPull(deps.pullGate, request, { registry, name: parsed.name, kind: 'blobs', reference: parsed.digest });
      return serveBlob(deps, request, reply, { target: { registry, name: parsed.name, verified }, digest: parsed.digest });
    }
  }
}

export function installRoutes(app: FastifyInstance, deps: RouteDeps): void {
  app.addHook('onRequest', (request, reply, done) => {
    reply.header(API_VERSION_HEADER, API_VERSION);
    // A route that declares the method answers it (the fetch coordination's POST, PUT, DELETE: routes-fetches.ts).
    if (request.method === 'GET' || request.method === 'HEAD' || request.routeOptions.url !== undefined) {
      done();
      return;
    }
    reply.header('allow', ALLOWED_METHODS);
    done(new RegistryError('UNSUPPORTED', { method: clip(request.method, 32) }, { allow: ALLOWED_METHODS }));
  });
  // A request from a peer is answered from the local content only: never forwarded, so no loops.
  const localDeps: RouteDeps = { ...deps, source: deps.localSource ?? deps.source };
  const handler = (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (!isPeerRequest(request.headers)) return dispatch(deps, request, reply);
    if (request.accessLog) request.accessLog.fromPeer = true;
    return dispatch(localDeps, request, reply);
  };
  app.route({ method: ['GET', 'HEAD'], url: '/v2', handler });
  app.route({ method: ['GET', 'HEAD'], url: '/v2/*', handler });
}
