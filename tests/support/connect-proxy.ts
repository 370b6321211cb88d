// An HTTP CONNECT proxy on loopback (what a kubeconfig's proxy-url names, as
// corporate proxies do): tunnels each CONNECT to its target and records the
// targets, so a test can tell that the traffic went through it.
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';

export interface ConnectProxy {
  readonly url: string;
  /** The `host:port` of every CONNECT so far. */
  tunnels(): string[];
  stop(): Promise<void>;
}

function tunnel(target: string, client: Socket, head: Buffer): void {
  const separator = target.lastIndexOf(':');
  const upstream = connect(Number(target.slice(separator + 1)), target.slice(0, separator).replace(/^\[|\]$/g, ''), () => {
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    upstream.write(head);
    upstream.pipe(client).pipe(upstream);
  });
  upstream.once('error', () => client.destroy());
  client.once('error', () => upstream.destroy());
}

export async function startConnectProxy(): Promise<ConnectProxy> {
  const seen: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((_req, res) => res.writeHead(405).end('CONNECT only\n'));
  server.on('connect', (req, client: Socket, head: Buffer) => {
    seen.push(req.url ?? '');
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    tunnel(req.url ?? '', client, head);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    tunnels: () => [...seen],
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
