// Blob GETs to peers on HTTP/1.1 connections of this client's own, read into
// reused buffers (read-ring.ts): the body's chunks are views of them, and
// whoever writes a chunk on gives it back (giveBack) once its socket took it.
// Short requests (HEADs, manifests, the index) keep node:http (client.ts);
// only blob streams, where every byte passes, come here.
//
// What it speaks: a GET with its headers, answered with a status line,
// headers and a body of Content-Length bytes (what an agent sends; a chunked
// or length-less answer is refused, the connection closed). A finished body
// leaves its connection for the next request to the same peer; a connection
// reused after the peer closed it is retried once on a new one, before any
// answer came. A body not read to its end closes its connection.
//
// Measured (bench:load-peer, 200 GETs of a 32 MiB layer from a peer, 30 s):
// see README "Resources, beside Spegel".
import { connect, type Socket } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { headersDeadline, peerAddress, peerHeaders, PeerRequestError, type Candidate, type PeerRequest } from './client.ts';
import { createLentBuffers, createReadRing, giveBack, type LentBuffers, type ReadRing } from './read-ring.ts';

/** Header bytes of an answer at most. */
const MAX_HEAD_BYTES = 64 * 1024;
/** Body bytes a response buffers before its connection stops reading (its reader is flowing: mostly none). */
const RESPONSE_BUFFER_BYTES = 256 * 1024;
/** An idle connection is closed after this long without a request. */
const IDLE_CLOSE_MS = 30_000;
/**
 * Body bytes a connection reads in one turn of the event loop at most; then
 * it pauses until the next turn (setImmediate), so that everything else gets
 * its turn. libuv reads a readable socket up to 32 times in a row (2 MiB in
 * 64 KiB reads), each hashed and written on at once, and a resume from
 * within the read's own callbacks (the reader wanting more, in a nextTick)
 * lets it go on: under bench:load-peer (32 peer streams) one turn of the
 * loop read 40-64 MiB and took 110-250 ms, and every step of a manifest HEAD
 * waited that long.
 */
const MAX_TURN_READ_BYTES = 256 * 1024;

/** A peer's answer: status, headers (names in lower case) and the body, as a stream of lent views. */
export class BlobResponse extends Readable {
  statusCode: number;
  headers: IncomingHttpHeaders;
  /** Every byte of the body came. */
  complete = false;
  readonly #conn: Conn;

  constructor(conn: Conn, head: { statusCode: number; headers: IncomingHttpHeaders }) {
    super({ highWaterMark: RESPONSE_BUFFER_BYTES });
    this.#conn = conn;
    this.statusCode = head.statusCode;
    this.headers = head.headers;
  }

  override _read(): void {
    this.#conn.consumerPaused = false;
    maybeRead(this.#conn);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    if (!this.complete) kill(this.#conn);
    callback(err);
  }
}

interface Waiting {
  resolve(response: BlobResponse): void;
  reject(err: Error): void;
  /** The connection was reused and failed before any answer: ask again on a new one. */
  stale(): void;
}

/** One connection: changed only by the functions of this file. */
interface Conn {
  readonly client: ClientState;
  readonly key: string;
  readonly socket: Socket;
  readonly ring: ReadRing;
  phase: 'idle' | 'head' | 'body' | 'dead';
  head: string;
  waiting: Waiting | undefined;
  response: BlobResponse | undefined;
  remaining: number;
  keepAlive: boolean;
  /** Served an answer before (a reused connection may have been closed by the peer meanwhile). */
  reused: boolean;
  consumerPaused: boolean;
  /** Body bytes read in this turn of the event loop. */
  turnBytes: number;
  /** Read its share of this turn: paused until the next. */
  turnPaused: boolean;
  idleTimer: NodeJS.Timeout | undefined;
}

interface Peer {
  idle: Conn[];
  open: number;
  queue: Array<() => void>;
}

interface ClientState {
  readonly maxSocketsPerPeer: number;
  readonly lent: LentBuffers;
  readonly peers: Map<string, Peer>;
  readonly conns: Set<Conn>;
  /** Read buffers made by connections already closed. */
  allocatedByGone: number;
  closed: boolean;
}

export interface StreamClient {
  /** A GET of a blob (or a range of it); resolves with the answer once its headers are there. */
  request(candidate: Candidate, request: PeerRequest): Promise<BlobResponse>;
  /** Gives back a chunk of a body once its socket took it (a no-op for other chunks). */
  giveBack(chunk: Uint8Array): void;
  /** Closes every connection. */
  close(): void;
  /** Read buffers ever made, over all connections. */
  buffersAllocated(): number;
}

function peerOf(client: ClientState, key: string): Peer {
  let peer = client.peers.get(key);
  if (peer === undefined) client.peers.set(key, (peer = { idle: [], open: 0, queue: [] }));
  return peer;
}

function maybeRead(conn: Conn): void {
  if (conn.phase === 'body' && !conn.consumerPaused && !conn.turnPaused) conn.socket.resume();
}

/** The next turn of the loop: a connection paused for its share reads again. */
function nextTurn(conn: Conn): void {
  conn.turnPaused = false;
  maybeRead(conn);
}

/**
 * After a read: whether the connection may read again in this turn of the
 * loop. Every MAX_TURN_READ_BYTES it pauses until the next turn (a turn with
 * fewer reads is not told apart: a pause every 256 KiB costs a setImmediate).
 */
function withinTurn(conn: Conn, nread: number): boolean {
  if (conn.phase !== 'body') return true;
  conn.turnBytes += nread;
  if (conn.turnBytes < MAX_TURN_READ_BYTES) return true;
  conn.turnBytes = 0;
  conn.turnPaused = true;
  setImmediate(nextTurn, conn);
  return false;
}

/** The connection is done for: closed, and whoever waited on it told. */
function kill(conn: Conn, err: Error = new PeerRequestError('peer connection closed mid-body')): void {
  if (conn.phase === 'dead') return;
  const { phase, waiting, response, reused } = conn;
  conn.phase = 'dead';
  conn.waiting = undefined;
  clearTimeout(conn.idleTimer);
  conn.socket.destroy();
  conn.client.conns.delete(conn);
  conn.client.allocatedByGone += conn.ring.allocated;
  const peer = peerOf(conn.client, conn.key);
  peer.open--;
  const at = peer.idle.indexOf(conn);
  if (at >= 0) peer.idle.splice(at, 1);
  peer.queue.shift()?.();
  if (phase === 'head' && waiting !== undefined) {
    if (reused && conn.head === '') waiting.stale();
    else waiting.reject(err);
  }
  if (phase === 'body' && response !== undefined && !response.destroyed) response.destroy(err);
}

/** The answer's body is all there: the connection serves the next request (or closes). */
function finished(conn: Conn): void {
  const response = conn.response;
  conn.response = undefined;
  if (response !== undefined) {
    response.complete = true;
    response.push(null);
  }
  if (!conn.keepAlive || conn.client.closed) return kill(conn);
  conn.phase = 'idle';
  conn.reused = true;
  conn.ring.trim();
  conn.socket.unref();
  conn.idleTimer = setTimeout(() => kill(conn), IDLE_CLOSE_MS);
  conn.idleTimer.unref();
  const peer = peerOf(conn.client, conn.key);
  peer.idle.push(conn);
  peer.queue.shift()?.();
}

/** Parses a complete head: the status line and the headers. */
function parseHead(text: string): { statusCode: number; headers: IncomingHttpHeaders } {
  const lines = text.split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (status === null) throw new PeerRequestError(`bad status line ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new PeerRequestError(`bad header line ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { statusCode: Number(status[1]), headers };
}

/** The head is complete: the answer is handed over, with the body bytes of this read that follow it. */
function headDone(conn: Conn, headText: string): void {
  const head = parseHead(headText);
  if (head.headers['transfer-encoding'] !== undefined) throw new PeerRequestError('peer answered with a chunked body');
  const length = head.headers['content-length'];
  if (length === undefined || !/^\d{1,16}$/.test(length)) throw new PeerRequestError('peer answered without a valid content-length');
  conn.remaining = Number(length);
  conn.keepAlive = !/\bclose\b/i.test(head.headers.connection ?? '');
  const response = new BlobResponse(conn, head);
  conn.response = response;
  conn.phase = 'body';
  const waiting = conn.waiting;
  conn.waiting = undefined;
  waiting?.resolve(response);
}

function onHeadBytes(conn: Conn, bytes: Buffer): Buffer | undefined {
  const before = conn.head.length;
  conn.head += bytes.toString('latin1');
  const end = conn.head.indexOf('\r\n\r\n');
  if (end < 0) {
    if (conn.head.length > MAX_HEAD_BYTES) throw new PeerRequestError(`answer head over ${MAX_HEAD_BYTES} bytes`);
    return undefined;
  }
  headDone(conn, conn.head.slice(0, end));
  conn.head = '';
  return bytes.subarray(end + 4 - before);
}

function onBodyBytes(conn: Conn, bytes: Buffer): void {
  const response = conn.response;
  if (response === undefined || bytes.length === 0) return;
  if (bytes.length > conn.remaining) throw new PeerRequestError(`peer sent more than the ${conn.remaining} bytes left of its body`);
  conn.remaining -= bytes.length;
  conn.ring.lend(bytes);
  if (!response.push(bytes)) {
    conn.consumerPaused = true;
    conn.socket.pause();
  }
}

/** One read of the socket. */
function onBytes(conn: Conn, bytes: Buffer): void {
  try {
    let body: Buffer | undefined = bytes;
    if (conn.phase === 'head') body = onHeadBytes(conn, bytes);
    else if (conn.phase !== 'body') throw new PeerRequestError('peer sent bytes nobody asked for');
    if (body !== undefined) onBodyBytes(conn, body);
    if (conn.phase === 'body' && conn.remaining === 0) finished(conn);
  } catch (err) {
    kill(conn, err instanceof Error ? err : new PeerRequestError(String(err)));
  }
}

function openConn(client: ClientState, key: string, address: { host: string; port: number }): Conn {
  const ring = createReadRing(client.lent);
  const socket = connect({
    ...address,
    noDelay: true,
    onread: {
      buffer: () => ring.next(),
      // Reads come after connect() returned, so `conn` is there. Reading goes
      // on, up to its share of each turn: a response whose reader is slow
      // pauses its socket itself.
      callback: (nread: number) => {
        ring.read(nread, (bytes) => onBytes(conn, bytes));
        return withinTurn(conn, nread);
      },
    },
  });
  const conn: Conn = {
    client,
    key,
    socket,
    ring,
    phase: 'idle',
    head: '',
    waiting: undefined,
    response: undefined,
    remaining: 0,
    keepAlive: true,
    reused: false,
    consumerPaused: false,
    turnBytes: 0,
    turnPaused: false,
    idleTimer: undefined,
  };
  socket.on('error', (err) => kill(conn, new PeerRequestError(`${key}: ${err.message}`)));
  socket.on('close', () => kill(conn));
  socket.on('end', () => kill(conn));
  socket.resume();
  client.conns.add(conn);
  peerOf(client, key).open++;
  return conn;
}

/** A connection to the peer: an idle one, a new one under the limit, or the next one freed. */
async function acquire(client: ClientState, address: { host: string; port: number }, fresh: boolean, signal: AbortSignal | undefined): Promise<Conn> {
  const key = `${address.host}:${address.port}`;
  const peer = peerOf(client, key);
  for (;;) {
    if (client.closed) throw new PeerRequestError('peer stream client closed');
    if (signal?.aborted === true) throw new PeerRequestError('aborted');
    const idle = fresh ? undefined : peer.idle.pop();
    if (idle !== undefined) {
      clearTimeout(idle.idleTimer);
      idle.socket.ref();
      idle.consumerPaused = false;
      return idle;
    }
    if (peer.open < client.maxSocketsPerPeer) return openConn(client, key, address);
    if (fresh && peer.idle.length > 0) {
      kill(peer.idle[0] as Conn);
      continue;
    }
    await new Promise<void>((resolve) => peer.queue.push(resolve));
  }
}

/** The request's head: the request line and its headers (peerHeaders). */
function requestHead(hostHeader: string, request: PeerRequest, headers: Record<string, string>): string {
  const lines = Object.entries({ host: hostHeader, ...headers }).map(([name, value]) => {
    if (/[\r\n]/.test(name + value)) throw new PeerRequestError(`header ${name} holds a line break`);
    return `${name}: ${value}`;
  });
  return `${request.method} ${request.path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`;
}

/** Sends the request on `conn`; settles with the answer once its head is there. */
function exchange(conn: Conn, head: string, request: PeerRequest): Promise<BlobResponse | 'stale'> {
  return new Promise((resolve, reject) => {
    const done = headersDeadline(request, (message) => kill(conn, new PeerRequestError(message)));
    conn.phase = 'head';
    conn.head = '';
    conn.waiting = {
      resolve: (response) => (done(), resolve(response)),
      reject: (err) => (done(), reject(err)),
      stale: () => (done(), resolve('stale')),
    };
    conn.socket.resume();
    conn.socket.write(head);
  });
}

export interface StreamClientOptions {
  /** Connections per peer at most; more requests wait for one. */
  maxSocketsPerPeer: number;
}

export function createStreamClient(options: StreamClientOptions): StreamClient {
  const client: ClientState = {
    maxSocketsPerPeer: Math.max(1, options.maxSocketsPerPeer),
    lent: createLentBuffers(),
    peers: new Map(),
    conns: new Set(),
    allocatedByGone: 0,
    closed: false,
  };
  return {
    async request(candidate, request) {
      const { host, port, hostHeader } = peerAddress(candidate);
      const address = { host, port };
      const head = requestHead(hostHeader, request, peerHeaders(candidate, request));
      for (const fresh of [false, true]) {
        const conn = await acquire(client, address, fresh, request.signal);
        const answer = await exchange(conn, head, request).catch((err: unknown) => {
          throw err instanceof PeerRequestError ? new PeerRequestError(`${candidate.name}: ${err.message}`) : err;
        });
        if (answer !== 'stale') return answer;
      }
      throw new PeerRequestError(`${candidate.name}: connection closed before an answer`);
    },
    giveBack(chunk) {
      giveBack(client.lent, chunk);
    },
    close() {
      client.closed = true;
      for (const conn of [...client.conns]) kill(conn, new PeerRequestError('peer stream client closed'));
    },
    buffersAllocated() {
      let total = client.allocatedByGone;
      for (const conn of client.conns) total += conn.ring.allocated;
      return total;
    },
  };
}
