// The metrics endpoint: a small HTTP server of its own (not the registry's
// port, so scrapes never meet the registry's load shedding and the registry
// never serves /metrics to containerd). GET /metrics only; 404 otherwise.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from './registry.ts';
import type { ListenAddress } from '../config/address.ts';
import type { Logger } from '../log/logger.ts';

export const METRICS_PATH = '/metrics';

export interface MetricsServerOptions {
  registry: Registry;
  addr: ListenAddress;
  logger: Logger;
}

export interface MetricsServer {
  /** The address actually bound (port 0 resolved). */
  readonly addr: ListenAddress;
  /** Stops listening and closes every connection. The server never keeps the process alive on its own. */
  close(): Promise<void>;
}

/** One answer of the endpoint; `headers` are added to content-type and content-length. */
interface Reply {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Sends `reply`, without its body for a HEAD request. */
function send(res: ServerResponse, method: string, reply: Reply): void {
  const { status, contentType, body, headers = {} } = reply;
  res.writeHead(status, { 'content-type': contentType, 'content-length': String(Buffer.byteLength(body)), ...headers });
  res.end(method === 'HEAD' ? undefined : body);
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { registry } = options;
  const log = options.logger.child({ component: 'metrics' });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    req.resume(); // no request body is wanted
    const method = req.method ?? '';
    const path = (req.url ?? '').split('?')[0];
    if (path !== METRICS_PATH) return send(res, method, { status: 404, contentType: 'text/plain', body: 'not found\n' });
    if (method !== 'GET' && method !== 'HEAD')
      return send(res, method, { status: 405, contentType: 'text/plain', body: 'method not allowed\n', headers: { allow: 'GET, HEAD' } });
    try {
      send(res, method, { status: 200, contentType: registry.contentType, body: await registry.metrics() });
    } catch (err) {
      log.warn({ err }, 'collecting metrics failed');
      send(res, method, { status: 500, contentType: 'text/plain', body: 'collecting metrics failed\n' });
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.warn({ err }, 'metrics request failed');
      res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.addr.port, options.addr.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => log.warn({ err }, 'metrics server error'));
  server.unref(); // never what keeps the process alive
  const bound = server.address() as AddressInfo;

  let closing: Promise<void> | undefined;
  return {
    addr: { host: bound.address, port: bound.port },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
