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

/** Resolves true on 'drain', false when the response closed first. */
function drained(res: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    const onDrain = (): void => {
      res.off('close', onClose);
      resolve(true);
    };
    const onClose = (): void => {
      res.off('drain', onDrain);
      resolve(false);
    };
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
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
}

/**
 * Writes `expectedBytes` bytes from `source` to `res`. An error before the
 * first chunk rejects (nothing has been sent; the caller answers with an
 * error response); later errors destroy the response.
 */
export async function streamBody(res: ServerResponse, source: Readable, options: StreamOptions): Promise<StreamOutcome> {
  const { expectedBytes, writeHead, counter } = options;
  if (options.headFirst === true && !res.destroyed) {
    writeHead();
    // Node sends the head with the first body chunk otherwise.
    res.flushHeaders();
    if (counter !== undefined) counter.bytesSent = 0;
  }
  const chunks = source[Symbol.asyncIterator]();
  // Whatever way this ends short of complete, the source is released: by the
  // client's 'close' while waiting on it, or in `finally`.
  const onClose = (): void => {
    if (!res.writableFinished) source.destroy();
  };
  res.once('close', onClose);
  let bytesSent = 0;
  let complete = false;
  try {
    if (res.destroyed) return { kind: 'client-gone', bytesSent };
    let next: IteratorResult<unknown>;
    try {
      next = await chunks.next();
    } catch (err) {
      if (res.destroyed) return { kind: 'client-gone', bytesSent };
      throw err;
    }
    if (res.destroyed) return { kind: 'client-gone', bytesSent };
    if (!res.headersSent) {
      writeHead();
      if (counter !== undefined) counter.bytesSent = 0;
    }
    options.onFirstChunk?.();
    while (next.done !== true) {
      const chunk = next.value;
      if (!(chunk instanceof Uint8Array)) throw new Error('source yielded a non-binary chunk');
      if (bytesSent + chunk.byteLength > expectedBytes) throw new Error(`source has more than the announced ${expectedBytes} bytes`);
      bytesSent += chunk.byteLength;
      if (counter !== undefined) counter.bytesSent = bytesSent;
      if (!res.write(chunk) && !(await drained(res))) return { kind: 'client-gone', bytesSent };
      next = await chunks.next();
    }
    if (bytesSent !== expectedBytes) throw new Error(`source ended after ${bytesSent} of ${expectedBytes} bytes`);
    res.end();
    complete = true;
    return { kind: 'complete', bytesSent };
  } catch (err) {
    if (!res.headersSent) throw err;
    if (res.destroyed && !res.writableFinished) return { kind: 'client-gone', bytesSent };
    // No error argument: the socket is closed (FIN, nothing unread on it) short
    // of Content-Length, which every client reports as an error; an 'error'
    // event here would go unheard.
    res.destroy();
    return { kind: 'failed', bytesSent, error: asError(err) };
  } finally {
    res.off('close', onClose);
    if (!complete) source.destroy();
  }
}
