// A fault-injecting HTTP proxy in front of a real agent, for the peer traffic
// of the local cluster (like toxiproxy on the path between nodes). It listens
// where peers reach the node (the advertised pod IP and port) and forwards to
// the agent; requests that are not from a peer (no `x-mirra-peer` header) pass
// through untouched, unless `faultRedirects(true)`: then the GETs another
// node's containerd sends here after its agent's 307 (a signed redirect URL,
// `mirra-sig=`) are faulted as peer requests are, since on a real network
// they take the same path between nodes. Faults, one at a time, switchable
// while it runs:
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
import { Agent, createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { PEER_REQUEST_HEADER } from '../../internal/auth/peer-request.ts';
import { REDIRECT_SIGNATURE_PARAM } from '../../internal/auth/redirect.ts';
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
  /** A containerd GET that followed a redirect (faulted with faultRedirects(true)), not an agent's request. */
  redirected: boolean;
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
  /** Whether containerd's GETs that followed a redirect here (signed URL, no peer marker) are faulted too (default false). */
  faultRedirects(on: boolean): void;
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

/** The proxy's state: the fault in effect, whether it listens, the peer requests seen. */
interface ProxyState {
  readonly host: string;
  readonly port: number;
  readonly targetPort: number;
  readonly agent: Agent;
  readonly server: Server;
  readonly sockets: Set<Socket>;
  current: PeerFault;
  redirects: boolean;
  listening: boolean;
  stopped: boolean;
  log: ProxiedRequest[];
}

/** One request through the proxy: the client's request and response, its log record (peer requests only). */
interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly record: ProxiedRequest | undefined;
  readonly kind: RequestKind;
  /** Set once the fault has cut the body: what the agent's side does after that no longer matters. */
  cut: boolean;
}

/** An answer's body on its way to the client. */
interface BodyFlow {
  readonly ex: Exchange;
  readonly answer: IncomingMessage;
  readonly fault: PeerFault;
  /** The answer's Content-Length (NaN without one). */
  readonly length: number;
  /** Body bytes sent to the client so far. */
  sent: number;
}

function bodyFault(state: ProxyState, req: IncomingMessage, res: IncomingMessage, kind: RequestKind): PeerFault {
  const current = state.current;
  const isBody = req.method === 'GET' && kind === 'blob' && (res.statusCode === 200 || res.statusCode === 206);
  if (!isBody || (current.kind !== 'reset' && current.kind !== 'stall' && current.kind !== 'corrupt' && current.kind !== 'encoding')) return { kind: 'none' };
  return current;
}

/** reset and stall: cuts the body once `afterBytes` are reached; true when this chunk was the cut. */
function cutBody(state: ProxyState, flow: BodyFlow, chunk: Buffer): boolean {
  const { ex, answer, fault } = flow;
  if (fault.kind !== 'reset' && fault.kind !== 'stall') return false;
  const room = fault.afterBytes - flow.sent;
  if (chunk.length < room) return false;
  if (room > 0) ex.res.write(chunk.subarray(0, room));
  flow.sent += Math.max(0, room);
  if (ex.record !== undefined) ex.record.bytes = flow.sent;
  ex.cut = true;
  answer.destroy();
  // Reset: RST now (and count it against `times`). Stall: leave the client waiting; stop() or the client ends it.
  if (fault.kind === 'reset') {
    ex.res.socket?.resetAndDestroy();
    const current = state.current;
    if (fault.times !== undefined && current.kind === 'reset')
      state.current = current.times !== undefined && current.times > 1 ? { ...current, times: current.times - 1 } : { kind: 'none' };
  }
  return true;
}

/** corrupt: the chunk with the byte at `atByte` (or the body's last) flipped, when it holds that byte. */
function corruptChunk(flow: BodyFlow, chunk: Buffer): Buffer {
  const { fault, length, sent } = flow;
  if (fault.kind !== 'corrupt') return chunk;
  const at = Number.isFinite(length) ? Math.min(fault.atByte, length - 1) : fault.atByte;
  if (at < sent || at >= sent + chunk.length) return chunk;
  const out = Buffer.from(chunk);
  out[at - sent] = (out[at - sent] ?? 0) ^ 0xff;
  return out;
}

function relayChunk(state: ProxyState, flow: BodyFlow, chunk: Buffer): void {
  if (cutBody(state, flow, chunk)) return;
  const out = corruptChunk(flow, chunk);
  const { ex, answer } = flow;
  flow.sent += out.length;
  if (ex.record !== undefined) ex.record.bytes = flow.sent;
  if (!ex.res.write(out)) {
    answer.pause();
    ex.res.once('drain', () => answer.resume());
  }
}

/** The agent's answer to the client, with the body fault in effect (peer requests only). */
function relayAnswer(state: ProxyState, ex: Exchange, answer: IncomingMessage): void {
  const { req, res, record, kind } = ex;
  const fault: PeerFault = record === undefined ? { kind: 'none' } : bodyFault(state, req, answer, kind);
  if (record !== undefined) {
    record.status = answer.statusCode ?? 0;
    record.fault = fault.kind;
  }
  const headers = forwardHeaders(answer.headers);
  if (fault.kind === 'encoding') headers['content-encoding'] = fault.value;
  res.writeHead(answer.statusCode ?? 502, headers);
  const flow: BodyFlow = { ex, answer, fault, length: Number(answer.headers['content-length']), sent: 0 };
  answer.on('data', (chunk: Buffer) => relayChunk(state, flow, chunk));
  answer.once('end', () => res.end());
  answer.on('error', () => {
    if (!ex.cut) res.destroy();
  });
}

function forward(state: ProxyState, ex: Exchange): void {
  const { req, res } = ex;
  const upstream = request({
    host: state.host,
    port: state.targetPort,
    method: req.method,
    path: req.url,
    headers: forwardHeaders(req.headers),
    agent: state.agent,
  });
  res.once('close', () => {
    if (!res.writableFinished) upstream.destroy();
  });
  upstream.on('error', () => {
    // The agent is gone (killed, restarting): the client sees its connection reset.
    if (!ex.cut) res.destroy();
  });
  upstream.once('response', (answer) => relayAnswer(state, ex, answer));
  req.pipe(upstream);
}

function handleRequest(state: ProxyState, req: IncomingMessage, res: ServerResponse): void {
  const url = req.url ?? '/';
  const kind = classifyPath(url.split('?')[0] ?? url);
  const redirected = req.headers[PEER_REQUEST_HEADER] === undefined && url.includes(`&${REDIRECT_SIGNATURE_PARAM}=`);
  if (req.headers[PEER_REQUEST_HEADER] === undefined && !(redirected && state.redirects)) {
    forward(state, { req, res, record: undefined, kind, cut: false });
    return;
  }
  const record: ProxiedRequest = { method: req.method ?? '', url, kind, status: 0, bytes: 0, fault: 'none', redirected };
  state.log.push(record);
  const current = state.current;
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
  forward(state, { req, res, record, kind, cut: false });
}

function listen(state: ProxyState): Promise<void> {
  const { server } = state;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(state.port, state.host, () => {
      server.off('error', reject);
      state.listening = true;
      resolve();
    });
  });
}

function close(state: ProxyState): Promise<void> {
  return new Promise((resolve) => {
    if (!state.listening) {
      resolve();
      return;
    }
    state.listening = false;
    state.server.close(() => resolve());
    for (const socket of state.sockets) socket.destroy();
  });
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const { host, port, targetPort } = options;
  const server = createServer((req, res) => handleRequest(state, req, res));
  const state: ProxyState = {
    host,
    port,
    targetPort,
    agent: new Agent({ keepAlive: true }),
    server,
    sockets: new Set(),
    current: { kind: 'none' },
    redirects: false,
    listening: false,
    stopped: false,
    log: [],
  };
  server.keepAliveTimeout = 30_000;
  server.on('connection', (socket) => {
    state.sockets.add(socket);
    socket.once('close', () => state.sockets.delete(socket));
  });

  await listen(state);
  return {
    host,
    port,
    targetPort,
    async set(fault) {
      if (state.stopped) throw new Error('the fault proxy is stopped');
      state.current = fault;
      if (fault.kind === 'refuse') await close(state);
      else if (!state.listening) await listen(state);
    },
    fault: () => state.current,
    faultRedirects(on) {
      state.redirects = on;
    },
    requests: () => state.log.map((record) => ({ ...record })),
    resetRequests() {
      state.log = [];
    },
    async stop() {
      state.stopped = true;
      await close(state);
      state.agent.destroy();
    },
  };
}
