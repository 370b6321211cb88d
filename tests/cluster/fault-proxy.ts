// A fault-injecting HTTP proxy in front of a real agent, for the peer traffic
// of the local cluster (like toxiproxy on the path between nodes). It listens
// where peers reach the node (the advertised pod IP and port) and forwards to
// the agent; requests that are not from a peer (no `x-mirra-peer` header) pass
// through untouched. Faults, one at a time, switchable while it runs:
//
// - refuse: nothing listens on the port any more (connections are refused);
// - status: every peer request is answered 500 or 503 by the proxy;
// - reset: blob bodies (GET 200/206) are cut after `afterBytes` bytes with a
//   TCP reset (the first `times` cuts only, when given: then the fault is off);
// - hang: peer requests are accepted and never answered, not even a status
//   line, until the client gives up;
// - encoding: blob answers carry `Content-Encoding: <value>` over the same
//   bytes (a peer, or a proxy between nodes, that labels what it sends);
// - stall: blob bodies stop after `afterBytes` bytes and the connection stays
//   open, silent, until the client gives up;
// - corrupt: one byte of each blob body (at `atByte`, or the last one of a
//   shorter body) is flipped; length and headers are unchanged.
import { Agent, createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { PEER_REQUEST_HEADER } from '../../internal/auth/peer-request.ts';
import { classifyPath, type RequestKind } from '../support/counting-proxy.ts';

export type PeerFault =
  | { kind: 'none' }
  | { kind: 'refuse' }
  | { kind: 'status'; status: 500 | 503 }
  | { kind: 'reset'; afterBytes: number; times?: number }
  | { kind: 'hang' }
  | { kind: 'encoding'; value: string }
  | { kind: 'stall'; afterBytes: number }
  | { kind: 'corrupt'; atByte: number };

export interface ProxiedRequest {
  method: string;
  /** Path and query as received. */
  url: string;
  kind: RequestKind;
  /** The status the client got (0: none yet, or no response at all). */
  status: number;
  /** Body bytes the client got. */
  bytes: number;
  /** The fault applied to this request ('none' when it passed untouched). */
  fault: PeerFault['kind'];
}

export interface FaultProxy {
  /** Where it listens (the node IP) and the port peers use. */
  readonly host: string;
  readonly port: number;
  /** The agent behind it. */
  readonly targetPort: number;
  /** Switches the fault; resolves once it is in effect (refuse: the port is closed; others: it listens again). */
  set(fault: PeerFault): Promise<void>;
  fault(): PeerFault;
  /** Peer requests seen since the start or the last resetRequests(). */
  requests(): ProxiedRequest[];
  resetRequests(): void;
  stop(): Promise<void>;
}

export interface FaultProxyOptions {
  host: string;
  port: number;
  /** The agent's port on the same host. */
  targetPort: number;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'transfer-encoding']);

function forwardHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const result: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (!HOP_BY_HOP.has(name) && value !== undefined) result[name] = value;
  return result;
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const { host, port, targetPort } = options;
  const agent = new Agent({ keepAlive: true });
  const sockets = new Set<Socket>();
  let current: PeerFault = { kind: 'none' };
  let listening = false;
  let stopped = false;
  let log: ProxiedRequest[] = [];

  const bodyFault = (req: IncomingMessage, res: IncomingMessage, kind: RequestKind): PeerFault => {
    const isBody = req.method === 'GET' && kind === 'blob' && (res.statusCode === 200 || res.statusCode === 206);
    if (!isBody || (current.kind !== 'reset' && current.kind !== 'stall' && current.kind !== 'corrupt' && current.kind !== 'encoding')) return { kind: 'none' };
    return current;
  };

  const forward = (req: IncomingMessage, res: ServerResponse, record: ProxiedRequest | undefined, kind: RequestKind): void => {
    const upstream = request({ host, port: targetPort, method: req.method, path: req.url, headers: forwardHeaders(req.headers), agent });
    res.once('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    /** Set once the fault has cut the body: what the agent's side does after that no longer matters. */
    let cut = false;
    upstream.on('error', () => {
      // The agent is gone (killed, restarting): the client sees its connection reset.
      if (!cut) res.destroy();
    });
    upstream.once('response', (answer) => {
      const fault = record === undefined ? { kind: 'none' as const } : bodyFault(req, answer, kind);
      if (record !== undefined) {
        record.status = answer.statusCode ?? 0;
        record.fault = fault.kind;
      }
      const headers = forwardHeaders(answer.headers);
      if (fault.kind === 'encoding') headers['content-encoding'] = fault.value;
      res.writeHead(answer.statusCode ?? 502, headers);
      const length = Number(answer.headers['content-length']);
      let sent = 0;
      answer.on('data', (chunk: Buffer) => {
        if (fault.kind === 'reset' || fault.kind === 'stall') {
          const room = fault.afterBytes - sent;
          if (chunk.length >= room) {
            if (room > 0) res.write(chunk.subarray(0, room));
            sent += Math.max(0, room);
            if (record !== undefined) record.bytes = sent;
            cut = true;
            answer.destroy();
            // Reset: RST now (and count it against `times`). Stall: leave the client waiting; stop() or the client ends it.
            if (fault.kind === 'reset') {
              res.socket?.resetAndDestroy();
              if (fault.times !== undefined && current.kind === 'reset') current = current.times !== undefined && current.times > 1 ? { ...current, times: current.times - 1 } : { kind: 'none' };
            }
            return;
          }
        }
        let out = chunk;
        if (fault.kind === 'corrupt') {
          const at = Number.isFinite(length) ? Math.min(fault.atByte, length - 1) : fault.atByte;
          if (at >= sent && at < sent + chunk.length) {
            out = Buffer.from(chunk);
            out[at - sent] = (out[at - sent] ?? 0) ^ 0xff;
          }
        }
        sent += out.length;
        if (record !== undefined) record.bytes = sent;
        if (!res.write(out)) {
          answer.pause();
          res.once('drain', () => answer.resume());
        }
      });
      answer.once('end', () => res.end());
      answer.on('error', () => {
        if (!cut) res.destroy();
      });
    });
    req.pipe(upstream);
  };

  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    const kind = classifyPath(url.split('?')[0] ?? url);
    if (req.headers[PEER_REQUEST_HEADER] === undefined) {
      forward(req, res, undefined, kind);
      return;
    }
    const record: ProxiedRequest = { method: req.method ?? '', url, kind, status: 0, bytes: 0, fault: 'none' };
    log.push(record);
    if (current.kind === 'hang') {
      record.fault = 'hang';
      req.resume();
      return;
    }
    if (current.kind === 'status') {
      record.status = current.status;
      record.fault = 'status';
      req.resume();
      const body = JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'injected fault' }] });
      res.writeHead(current.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    forward(req, res, record, kind);
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  const listen = (): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        listening = true;
        resolve();
      });
    });
  const close = (): Promise<void> =>
    new Promise((resolve) => {
      if (!listening) {
        resolve();
        return;
      }
      listening = false;
      server.close(() => resolve());
      for (const socket of sockets) socket.destroy();
    });

  await listen();
  return {
    host,
    port,
    targetPort,
    async set(fault) {
      if (stopped) throw new Error('the fault proxy is stopped');
      current = fault;
      if (fault.kind === 'refuse') await close();
      else if (!listening) await listen();
    },
    fault: () => current,
    requests: () => log.map((record) => ({ ...record })),
    resetRequests() {
      log = [];
    },
    async stop() {
      stopped = true;
      await close();
      agent.destroy();
    },
  };
}
