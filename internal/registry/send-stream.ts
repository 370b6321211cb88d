// Streams a body from a Readable straight to the raw response (the reply is
// hijacked): chunks are written as they come (no buffering, no copies), with
// backpressure (wait for 'drain'). Headers are written only once the first
// chunk (or the end) is there, so a source that fails on open still gets a
// clean error response (unless `headFirst`: a blob still being fetched, whose
// failure should make containerd ask the mirror again). After that, any failure closes the connection short
// of Content-Length, never a complete-looking short body: a plain close (FIN),
// which Go's HTTP client (containerd) reports as an unexpected EOF and
// resumes with a Range; a reset (RST) fails a containerd 2.x pull outright
// (tests/e2e/containerd2.test.ts). A client that goes away destroys the source.
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';

export type StreamOutcome =
  { kind: 'complete'; bytesSent: number } | { kind: 'client-gone'; bytesSent: number } | { kind: 'failed'; bytesSent: number; error: Error };

/**
 * A send that threw: rethrown while nothing was sent (the caller answers with
 * a clean error), else the response is destroyed (the client sees a cut body).
 */
export function sendFailed(res: ServerResponse, err: unknown, bytesSent: number): StreamOutcome {
  if (!res.headersSent) throw err;
  if (res.destroyed) return { kind: 'client-gone', bytesSent };
  res.destroy();
  return { kind: 'failed', bytesSent, error: err instanceof Error ? err : new Error(String(err)) };
}

export interface StreamOptions {
  /** The body length announced in Content-Length. */
  expectedBytes: number;
  /** Writes the status line and headers; called once the first chunk is there (or at once with headFirst). */
  writeHead: () => void;
  /** Write the headers before the first chunk is there (LocatedContent.headersFirst); an error then cuts the body short. */
  headFirst?: boolean;
  /** Called once the first chunk is there. */
  onFirstChunk?: () => void;
  /** Kept up to date with the bytes written (for an access log that fires on 'close'). */
  counter?: { bytesSent: number | undefined };
  /** Called with each chunk once the socket took it (LocatedContent.giveBack: the chunk's buffer may be reused). */
  written?(chunk: Uint8Array): void;
}

/** Where one streamBody call is: changed only by the functions below. */
interface BodyState {
  readonly res: ServerResponse;
  readonly source: Readable;
  readonly options: StreamOptions;
  bytesSent: number;
  started: boolean;
  settled: boolean;
  onData(chunk: unknown): void;
  resolve(outcome: StreamOutcome): void;
  reject(err: Error): void;
}

/** Ends the call: before any header went out an error rejects (the caller answers it); after, the response is cut short. */
function settle(s: BodyState, outcome: StreamOutcome | Error): void {
  if (s.settled) return;
  s.settled = true;
  s.source.off('data', s.onData);
  const { res, bytesSent } = s;
  if (!(outcome instanceof Error)) {
    if (outcome.kind !== 'complete') s.source.destroy();
    s.resolve(outcome);
    return;
  }
  s.source.destroy();
  if (!res.headersSent) return s.reject(outcome);
  if (res.destroyed && !res.writableFinished) return s.resolve({ kind: 'client-gone', bytesSent });
  // No error argument: the socket is closed (FIN, nothing unread on it) short
  // of Content-Length, which every client reports as an error; an 'error'
  // event here would go unheard.
  res.destroy();
  s.resolve({ kind: 'failed', bytesSent, error: outcome });
}

/** The first chunk (or the end) is there: the head goes out. */
function start(s: BodyState): void {
  s.started = true;
  if (!s.res.headersSent) {
    s.options.writeHead();
    if (s.options.counter !== undefined) s.options.counter.bytesSent = 0;
  }
  s.options.onFirstChunk?.();
}

function onChunk(s: BodyState, chunk: unknown): void {
  if (s.settled) return;
  if (s.res.destroyed) return settle(s, { kind: 'client-gone', bytesSent: s.bytesSent });
  if (!s.started) start(s);
  if (!(chunk instanceof Uint8Array)) return settle(s, new Error('source yielded a non-binary chunk'));
  const { expectedBytes, counter } = s.options;
  if (s.bytesSent + chunk.byteLength > expectedBytes) return settle(s, new Error(`source has more than the announced ${expectedBytes} bytes`));
  s.bytesSent += chunk.byteLength;
  if (counter !== undefined) counter.bytesSent = s.bytesSent;
  const { written } = s.options;
  if (!s.res.write(chunk, written === undefined ? undefined : () => written(chunk))) s.source.pause();
}

function onEnd(s: BodyState): void {
  if (s.settled) return;
  if (s.res.destroyed) return settle(s, { kind: 'client-gone', bytesSent: s.bytesSent });
  if (!s.started) start(s);
  const { expectedBytes } = s.options;
  if (s.bytesSent !== expectedBytes) return settle(s, new Error(`source ended after ${s.bytesSent} of ${expectedBytes} bytes`));
  s.res.end();
  settle(s, { kind: 'complete', bytesSent: s.bytesSent });
}

/**
 * Writes `expectedBytes` bytes from `source` to `res`. An error before the
 * first chunk rejects (nothing has been sent; the caller answers with an
 * error response); later errors destroy the response.
 *
 * Chunks are written as the source pushed them, from its 'data' events, with
 * pause() on backpressure and resume() on 'drain'. Not through the stream's
 * async iterator: that calls read() without a size, which joins every chunk
 * buffered at that moment into one new Buffer, a copy of every byte of a
 * peer stream and as much fresh memory again (up to the source's
 * highWaterMark, 1 MiB, per read).
 */
export async function streamBody(res: ServerResponse, source: Readable, options: StreamOptions): Promise<StreamOutcome> {
  const { counter } = options;
  if (options.headFirst === true && !res.destroyed) {
    options.writeHead();
    // Node sends the head with the first body chunk otherwise.
    res.flushHeaders();
    if (counter !== undefined) counter.bytesSent = 0;
  }
  if (res.destroyed) {
    source.destroy();
    return { kind: 'client-gone', bytesSent: 0 };
  }
  return new Promise<StreamOutcome>((resolve, reject) => {
    const s: BodyState = { res, source, options, bytesSent: 0, started: false, settled: false, resolve, reject, onData: () => {} };
    s.onData = (chunk: unknown) => onChunk(s, chunk);
    const onDrain = (): void => {
      if (!s.settled) source.resume();
    };
    // Whatever way this ends short of complete, the source is released.
    const onClose = (): void => {
      if (!res.writableFinished) settle(s, { kind: 'client-gone', bytesSent: s.bytesSent });
    };
    const onError = (err: unknown): void => settle(s, err instanceof Error ? err : new Error(String(err)));
    const onSourceEnd = (): void => onEnd(s);
    res.on('drain', onDrain);
    res.once('close', onClose);
    source.once('end', onSourceEnd);
    source.once('error', onError);
    const done = (): void => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      source.off('end', onSourceEnd);
      source.off('error', onError);
      // A late error of a source already let go of must not go unheard.
      source.on('error', () => {});
    };
    s.resolve = (outcome) => {
      done();
      resolve(outcome);
    };
    s.reject = (err) => {
      done();
      reject(err);
    };
    source.on('data', s.onData);
  });
}
