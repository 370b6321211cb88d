// Admission control: at most `maxRequests` requests (manifests, blob HEADs,
// /v2/ and everything else short) and at most `maxStreams` blob GETs in the
// agent at once; beyond, 503 UNAVAILABLE with Retry-After at once, so that
// containerd moves on to the next host instead of queueing.
//
// Why a concurrency limit and not only @fastify/under-pressure: under the
// load bench (200 blob streams + 1,000 manifest HEADs/s on 2 cores) the
// agent's event loop stays prompt (mean delay <= 60 ms) while it falls behind
// the offered HEADs, so the backlog, and the latency, grow without bound in
// front of it; and its event-loop utilisation is ~1 both then and while it
// serves a single client at full speed, so it cannot tell overload from a
// healthy busy agent. Bounding the requests in progress bounds their latency
// (about maxRequests / throughput) and sheds only the excess. Blob GETs are
// long and counted apart: they are what fills the agent, each holds a socket
// and a file, and a cap on them bounds memory whatever the number of clients.
// Probes (/healthz, /readyz) are never counted nor refused.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { RegistryError } from './errors.ts';

export interface ConcurrencyLimits {
  /** Requests other than blob GETs in progress at most; 0 = no limit. */
  maxRequests: number;
  /** Blob GETs in progress (until their body is sent or cut) at most; 0 = no limit. */
  maxStreams: number;
  /** Retry-After of the 503 answers (default 1). */
  retryAfterSeconds?: number;
}

export const DEFAULT_CONCURRENCY: Readonly<ConcurrencyLimits> = {
  maxRequests: 64,
  maxStreams: 512,
};

const PROBES = new Set(['/healthz', '/readyz']);

function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query < 0 ? url : url.slice(0, query);
}

function kindOf(request: FastifyRequest): 'probe' | 'stream' | 'request' {
  const path = pathOf(request.url);
  if (PROBES.has(path)) return 'probe';
  return request.method === 'GET' && /\/blobs\/[^/]+$/.test(path) ? 'stream' : 'request';
}

export interface ConcurrencyGauge {
  /** Requests and streams in progress now. */
  inFlight(): { requests: number; streams: number };
}

export function installConcurrencyLimits(app: FastifyInstance, limits: ConcurrencyLimits): ConcurrencyGauge {
  const retryAfter = String(limits.retryAfterSeconds ?? 1);
  const counts = { request: 0, stream: 0 };
  const max = { request: limits.maxRequests, stream: limits.maxStreams };
  app.addHook('onRequest', async (request, reply) => {
    const kind = kindOf(request);
    if (kind === 'probe') return;
    if (max[kind] > 0 && counts[kind] >= max[kind]) {
      throw new RegistryError(
        'UNAVAILABLE',
        { reason: kind === 'stream' ? 'too many blob streams' : 'too many requests in progress', limit: max[kind] },
        { 'retry-after': retryAfter },
      );
    }
    counts[kind]++;
    // 'close' comes for every response, sent, hijacked or cut.
    reply.raw.once('close', () => counts[kind]--);
  });
  return { inFlight: () => ({ requests: counts.request, streams: counts.stream }) };
}
