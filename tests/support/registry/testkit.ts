// Test support for the registry tests: an app on a memory store with its log
// lines captured, and a real listening server on 127.0.0.1 for the tests that
// need a socket (aborted bodies, raw request targets).
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { createLogger } from '../../../internal/log/logger.ts';
import { createMemoryStore, type MemoryStore } from '../../../internal/oci/storetest/memory-store.ts';
import { createRegistryApp, type RegistryAppOptions } from '../../../internal/registry/app.ts';

export interface CapturedLog {
  lines: Array<Record<string, unknown>>;
  write(line: string): void;
}

export function captureLog(): CapturedLog {
  const lines: Array<Record<string, unknown>> = [];
  return {
    lines,
    write(line) {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed === 'object' && parsed !== null) lines.push(parsed as Record<string, unknown>);
    },
  };
}

export interface TestApp {
  app: FastifyInstance;
  store: MemoryStore;
  log: CapturedLog;
}

export function createTestApp(overrides: Partial<RegistryAppOptions> = {}): TestApp {
  const store = createMemoryStore();
  const log = captureLog();
  const app = createRegistryApp({
    store,
    logger: createLogger('info', log),
    mirroredRegistries: [],
    resolveTags: true,
    ...overrides,
  });
  return { app, store, log };
}

/** Starts the app on an ephemeral loopback port and returns its base URL. */
export async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address() as AddressInfo;
  return `http://127.0.0.1:${address.port}`;
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface RawRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  /** The client's source address (e.g. another loopback address, as another host). */
  from?: string;
}

/** A request with the target sent verbatim (fetch and inject normalise `..`); the whole answer, body as text. */
export function rawRequest(baseUrl: string, target: string, options: RawRequestOptions = {}): Promise<RawResponse> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, path: target, method: options.method ?? 'GET', headers: options.headers, localAddress: options.from, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A GET with the request target sent verbatim. */
export function rawGet(baseUrl: string, target: string): Promise<RawResponse> {
  return rawRequest(baseUrl, target);
}

/** A manifest document and its JSON text. */
export function sampleManifest(layers = 1): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'a'.repeat(64)}`, size: 2 },
    layers: Array.from({ length: layers }, (_, i) => ({
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest: `sha256:${String(i).padStart(64, 'b')}`,
      size: 10,
    })),
  });
}
