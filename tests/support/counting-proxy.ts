// A small HTTP reverse proxy that counts what passes through it and can limit
// response bandwidth, so a local registry behaves (and is measured) like a
// remote one. Used by upstream.ts; usable in front of any loopback HTTP server.
import { Agent, createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export type RequestKind = 'manifest' | 'blob' | 'other';

export interface CountedRequest {
  method: string;
  /** URL path without the query string. */
  path: string;
  /** Path and query string as received. */
  url: string;
  kind: RequestKind;
  /** Response status; 0 until the upstream has answered. */
  status: number;
  /** Response body bytes sent so far. */
  bytes: number;
}

export interface Counts {
  requests: CountedRequest[];
  /** GET requests for /v2/<name>/blobs/<digest>. */
  blobGets: number;
  /** GET requests for /v2/<name>/manifests/<reference>. */
  manifestGets: number;
  /** HEAD requests for /v2/<name>/manifests/<reference>. */
  manifestHeads: number;
  /** Response body bytes over all requests. */
  bytes: number;
}

export interface CountingProxy {
  /** "127.0.0.1:PORT" of the proxy. */
  host: string;
  counts(): Counts;
  resetCounts(): void;
  /** Changes the response bandwidth limit (shared by all connections); undefined removes it. */
  setBandwidth(bytesPerSec: number | undefined): void;
  stop(): Promise<void>;
}

export interface CountingProxyOptions {
  /** "127.0.0.1:PORT" of the server behind the proxy. */
  target: string;
  bandwidthBytesPerSec?: number;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'proxy-authorization', 'proxy-authenticate']);

export function classifyPath(path: string): RequestKind {
  if (/^\/v2\/.+\/manifests\/[^/]+$/.test(path)) return 'manifest';
  if (/^\/v2\/.+\/blobs\/[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(path)) return 'blob';
  return 'other';
}

function forwardHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const result: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!HOP_BY_HOP.has(name) && value !== undefined) result[name] = value;
  }
  return result;
}

/**
 * Token bucket over response bytes with debt: a caller that takes more than
 * is available waits until the bucket has refilled, so concurrent streams
 * share the rate and the total never exceeds it (beyond one burst).
 */
export function createBandwidthLimiter(bytesPerSec: number, burstBytes = Math.max(64 * 1024, bytesPerSec / 20)): (bytes: number) => Promise<void> {
  if (!(bytesPerSec > 0)) throw new Error(`bandwidth must be positive, got ${bytesPerSec}`);
  let tokens = burstBytes;
  let lastMs = performance.now();
  return async (bytes) => {
    const nowMs = performance.now();
    tokens = Math.min(burstBytes, tokens + ((nowMs - lastMs) * bytesPerSec) / 1000);
    lastMs = nowMs;
    tokens -= bytes;
    if (tokens < 0) await sleep((-tokens * 1000) / bytesPerSec);
  };
}

/** The proxy's state: where it forwards to, the requests counted, the bandwidth limit. */
interface ProxyState {
  /** host:port of the registry. */
  readonly target: string;
  readonly targetHost: string;
  readonly targetPort: number;
  readonly agent: Agent;
  requests: CountedRequest[];
  limit: ((bytes: number) => Promise<void>) | undefined;
  /** 127.0.0.1:<port>, once it listens. */
  ownHost: string;
}

async function forward(state: ProxyState, req: IncomingMessage, res: ServerResponse, counted: CountedRequest): Promise<void> {
  const url = counted.url;
  const upstreamReq = request({
    host: state.targetHost,
    port: state.targetPort,
    method: req.method,
    path: url,
    headers: forwardHeaders(req.headers),
    agent: state.agent,
  });
  const upstreamRes = new Promise<IncomingMessage>((resolve, reject) => {
    upstreamReq.once('response', resolve);
    upstreamReq.once('error', reject);
  });
  upstreamRes.catch(() => undefined); // observed below; avoids an unhandled rejection while the body is sent
  res.once('close', () => {
    if (!res.writableFinished) upstreamReq.destroy();
  });
  // The registry may answer before the request body is through (an error): send and wait for the answer together.
  pipeline(req, upstreamReq).catch(() => upstreamReq.destroy());
  const response = await upstreamRes;
  counted.status = response.statusCode ?? 502;
  const headers = forwardHeaders(response.headers);
  const location = headers.location;
  if (typeof location === 'string' && location.startsWith(`http://${state.target}/`)) {
    headers.location = `http://${state.ownHost}/${location.slice(`http://${state.target}/`.length)}`;
  }
  res.writeHead(counted.status, headers);
  await pipeline(
    response,
    async function* countAndLimit(source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        if (state.limit !== undefined) await state.limit(chunk.length);
        counted.bytes += chunk.length;
        yield chunk;
      }
    },
    res,
  );
}

function handle(state: ProxyState, req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/';
  const path = url.split('?')[0] ?? url;
  const counted: CountedRequest = { method: req.method ?? 'GET', path, url, kind: classifyPath(path), status: 0, bytes: 0 };
  state.requests.push(counted);
  forward(state, req, res, counted).catch((err: unknown) => {
    if (!res.headersSent) {
      counted.status = 502;
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`proxy error: ${err instanceof Error ? err.message : String(err)}\n`);
    } else {
      res.destroy();
    }
  });
}

export async function startCountingProxy(options: CountingProxyOptions): Promise<CountingProxy> {
  const [targetHost, targetPortText] = options.target.split(':');
  const targetPort = Number(targetPortText);
  if (targetHost === undefined || !Number.isInteger(targetPort)) throw new Error(`bad proxy target ${options.target}`);
  const agent = new Agent({ keepAlive: true });
  const limit = options.bandwidthBytesPerSec === undefined ? undefined : createBandwidthLimiter(options.bandwidthBytesPerSec);
  const state: ProxyState = { target: options.target, targetHost, targetPort, agent, requests: [], limit, ownHost: '' };

  const server = createServer((req, res) => handle(state, req, res));
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const ownHost = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.ownHost = ownHost;

  return {
    host: ownHost,
    counts() {
      const snapshot = state.requests.map((counted) => ({ ...counted }));
      const gets = (kind: RequestKind, method: string): number => snapshot.filter((r) => r.kind === kind && r.method === method).length;
      return {
        requests: snapshot,
        blobGets: gets('blob', 'GET'),
        manifestGets: gets('manifest', 'GET'),
        manifestHeads: gets('manifest', 'HEAD'),
        bytes: snapshot.reduce((sum, r) => sum + r.bytes, 0),
      };
    },
    resetCounts() {
      state.requests = [];
    },
    setBandwidth(bytesPerSec) {
      state.limit = bytesPerSec === undefined ? undefined : createBandwidthLimiter(bytesPerSec);
    },
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      agent.destroy();
    },
  };
}
