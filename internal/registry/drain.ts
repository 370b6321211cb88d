// Graceful stop of the registry server (SIGTERM): stop accepting at once, let
// the running blob streams finish within a grace period, then cut what is
// left.
//
// - app.close() closes the listening socket at once, so new connections are
//   refused and containerd moves on to the next host straight away; requests
//   that still arrive on open connections (pipelined behind a running one)
//   get 503 UNAVAILABLE as an OCI error body with `Connection: close`
//   (installClosingAnswer; Fastify's own return503OnClosing answer is not an
//   OCI body, so the app turns it off), /readyz included.
// - Responses already running go on. A keep-alive connection is closed as
//   soon as its last response is over (flushed to the kernel: the response's
//   'close'), idle ones at once, so the server closes as soon as the last
//   stream is done, not a keep-alive timeout later. (Not Node's
//   closeIdleConnections(): it also takes a connection whose response has
//   called end() but is still sending, which cuts the body's tail; so that
//   Node's own call in server.close() finds none such, send-file.ts ends a
//   response only once its writes are flushed.) The connections are tracked
//   from the start (trackConnections), as Node does not list them.
// - When the grace period is over (or `hurry` settles: a second signal), every
//   connection left is destroyed: a client sees a body cut short of its
//   Content-Length and retries elsewhere (containerd resumes or goes upstream).
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { errorBody, sendOciError } from './errors.ts';

export interface ConnectionTracker {
  /** From now on, close every connection once it has no response running. */
  closeWhenIdle(): void;
}

/** Follows the server's connections and their running responses; install before listening. */
export function trackConnections(server: Server): ConnectionTracker {
  /** Open connections -> responses running on them. */
  const running = new Map<Socket, number>();
  let closing = false;
  server.on('connection', (socket: Socket) => {
    running.set(socket, 0);
    socket.once('close', () => running.delete(socket));
    if (closing) socket.destroy();
  });
  server.on('request', (request, response) => {
    const socket = request.socket;
    running.set(socket, (running.get(socket) ?? 0) + 1);
    // 'close' of a response comes once it is flushed to the kernel, or cut.
    response.once('close', () => {
      const before = running.get(socket);
      if (before === undefined) return;
      const left = before - 1;
      running.set(socket, left);
      if (closing && left === 0) socket.destroy();
    });
  });
  return {
    closeWhenIdle() {
      closing = true;
      for (const [socket, responses] of running) if (responses === 0) socket.destroy();
    },
  };
}

/**
 * Requests that arrive once app.close() has begun get 503 UNAVAILABLE (an OCI
 * body, Retry-After: 1) and `Connection: close`, before any content is looked
 * at. Install right after the access log, with return503OnClosing off.
 */
export function installClosingAnswer(app: FastifyInstance): void {
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onRequest', (request, reply, done) => {
    if (!closing) return done();
    reply.header('connection', 'close');
    sendOciError(reply, { status: 503, body: errorBody('UNAVAILABLE', { reason: 'shutting down' }), headers: { 'retry-after': '1' }, internal: false });
  });
}

export interface DrainOptions {
  /** How long running responses may go on after the stop. */
  graceMs: number;
  log: Logger;
  /** Settles when the wait must end at once (e.g. a second SIGTERM). */
  hurry?: Promise<unknown>;
  /** The app's connections, tracked since before it listened. */
  connections: ConnectionTracker;
}

export interface DrainOutcome {
  /** 'drained': every response ended in time; else why the rest was cut. */
  ending: 'drained' | 'grace-over' | 'hurried';
  /** Connections open when the stop began. */
  connectionsAtStart: number;
  /** Connections destroyed when the grace period ended (0 when drained). */
  connectionsCut: number;
  durationMs: number;
}

function connectionCount(app: FastifyInstance): Promise<number> {
  return new Promise((resolve) => {
    app.server.getConnections((err, count) => resolve(err === null ? count : 0));
  });
}

/** Stops `app` gracefully; resolves once it is closed. */
export async function drainServer(app: FastifyInstance, options: DrainOptions): Promise<DrainOutcome> {
  const started = performance.now();
  const connectionsAtStart = await connectionCount(app);
  const closed = app.close();
  options.connections.closeWhenIdle();
  let timer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<'grace-over'>((resolve) => {
    timer = setTimeout(() => resolve('grace-over'), Math.max(0, options.graceMs));
  });
  const hurried =
    options.hurry === undefined
      ? new Promise<never>(() => {})
      : options.hurry.then(
          () => 'hurried' as const,
          () => 'hurried' as const,
        );
  options.log.info({ graceMs: options.graceMs, connections: connectionsAtStart }, 'draining: no new connections, running responses may finish');
  let ending: DrainOutcome['ending'];
  try {
    ending = await Promise.race([closed.then(() => 'drained' as const), graceOver, hurried]);
  } finally {
    clearTimeout(timer);
  }
  let connectionsCut = 0;
  if (ending !== 'drained') {
    connectionsCut = await connectionCount(app);
    options.log.warn({ connections: connectionsCut, ending }, 'drain cut short: closing the connections still open');
    app.server.closeAllConnections();
    await closed;
  }
  const durationMs = Math.round(performance.now() - started);
  options.log.info({ ending, connectionsAtStart, connectionsCut, durationMs }, 'registry server closed');
  return { ending, connectionsAtStart, connectionsCut, durationMs };
}
