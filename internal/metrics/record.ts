// Feeding the metrics of metrics.ts from the components' hooks: one function
// per hook, so that the wiring in cmd/ stays one line each.
import type { ContentSource } from '../content/source.ts';
import type { AccessLine } from '../registry/access-log.ts';
import type { Metrics } from './metrics.ts';

/** The `source` label of a request: a 404 for content is a miss (containerd goes upstream). */
export function requestSource(line: Pick<AccessLine, 'handler' | 'status' | 'source'>): string {
  if ((line.handler === 'blob' || line.handler === 'manifest') && line.status === 404) return 'miss';
  return line.source;
}

/** For createRegistryApp's onRequest: one access-log line -> request count, duration, bytes. */
export function recordRequest(metrics: Metrics, line: Readonly<AccessLine>): void {
  const source = requestSource(line);
  const from = line.fromPeer === true ? 'peer' : 'client';
  const { handler } = line;
  metrics.httpRequests.inc({ handler, method: line.method, status: String(line.status), source, from });
  metrics.httpRequestDuration.observe({ handler, source }, line.latencyMs / 1000);
  if (line.bytesSent !== undefined && line.bytesSent > 0) metrics.httpResponseBytes.inc({ handler, source, from }, line.bytesSent);
  if (line.aborted === true) metrics.httpAborted.inc({ handler, source });
}

/** The publisher's onPublished / onFailure hooks. */
export function publishHooks(metrics: Metrics): { onPublished(latencyMs: number, bytes: number): void; onFailure(err: unknown): void } {
  return {
    onPublished(latencyMs, bytes) {
      metrics.publishDuration.observe(latencyMs / 1000);
      metrics.publishBytes.inc(bytes);
    },
    onFailure() {
      metrics.publishFailures.inc();
    },
  };
}

/** The same source, counting its tag resolutions by the source that answered. */
export function countResolves(metrics: Metrics, source: ContentSource): ContentSource {
  return {
    async resolveTag(request, tag) {
      try {
        const resolved = await source.resolveTag(request, tag);
        if (resolved === undefined) metrics.resolves.inc({ source: 'none', result: 'not_found' });
        else metrics.resolves.inc({ source: resolved.source, result: 'found' });
        return resolved;
      } catch (err) {
        metrics.resolves.inc({ source: 'none', result: 'error' });
        throw err;
      }
    },
    locate: (request, digest) => source.locate(request, digest),
  };
}
