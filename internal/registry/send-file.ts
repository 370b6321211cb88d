// The fast path for file-backed content: reads the file into buffers borrowed
// from a bounded pool shared by all streams (buffer-pool.ts) and writes them
// to the raw response. A buffer goes back to the pool only once the socket has
// taken the write (its callback) or the response has closed, so nothing is
// copied twice and no fresh buffer is allocated per chunk (fs.ReadStream
// allocates one per chunk, which measurably costs throughput at GB/s). A
// stream has at most RING_SLOTS chunks in flight: one being read while the
// other is being written. Same contract as streamBody: headers only once the
// first chunk is read, any later failure destroys the response, a client that
// goes away stops the reads and the wait for a buffer. The file handle is
// always closed.
import type { FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { createBufferPool, type BufferPool } from './buffer-pool.ts';
import { sendfileBody, sendfileSocketFd } from './send-sendfile.ts';
import type { SendfileAddon } from './sendfile-addon.ts';
import { sendFailed, type StreamOptions, type StreamOutcome } from './send-stream.ts';

/** Read size: large reads, few syscalls and event-loop turns. */
export const FILE_CHUNK_BYTES = 1024 * 1024;
/** Chunks in flight per stream: one being read while the other is being written. */
const RING_SLOTS = 2;

export interface FileStreamOptions extends StreamOptions {
  /** The shared pool to borrow buffers from; default a private one of RING_SLOTS buffers of `chunkBytes`. */
  buffers?: BufferPool;
  /** Read size when no pool is given (default FILE_CHUNK_BYTES). */
  chunkBytes?: number;
  /** When given and the socket is plain TCP, the kernel sends the file instead (send-sendfile.ts). */
  sendfile?: SendfileAddon;
}

function closed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed) resolve();
    else res.once('close', () => resolve());
  });
}

/**
 * Writes `length` bytes of `buffer` to `res`; the buffer goes back to the pool
 * once the socket took them, or once the response closed (a destroyed socket
 * may never call the write back). Resolves then.
 */
function lend(res: ServerResponse, pool: BufferPool, buffer: Buffer, length: number): Promise<void> {
  return new Promise((resolve) => {
    let back = false;
    const giveBack = (): void => {
      if (back) return;
      back = true;
      res.off('close', giveBack);
      pool.release(buffer);
      resolve();
    };
    res.once('close', giveBack);
    res.write(length === buffer.length ? buffer : buffer.subarray(0, length), () => giveBack());
  });
}

/**
 * Writes `expectedBytes` bytes of the file from byte `start` to `res`, then
 * ends it. Rejects only when nothing has been sent yet.
 */
export async function streamFile(res: ServerResponse, handle: FileHandle, start: number, options: FileStreamOptions): Promise<StreamOutcome> {
  const socketFd = options.sendfile === undefined ? undefined : sendfileSocketFd(res);
  if (options.sendfile !== undefined && socketFd !== undefined) return sendfileBody(res, handle, start, { ...options, addon: options.sendfile, socketFd });
  const { expectedBytes, writeHead, counter } = options;
  const pool =
    options.buffers ?? createBufferPool({ bufferBytes: Math.max(1, Math.min(options.chunkBytes ?? FILE_CHUNK_BYTES, expectedBytes)), maxBuffers: RING_SLOTS });
  const left = new AbortController();
  const gone = closed(res).then(() => {
    left.abort(new Error('client gone'));
    return 'gone' as const;
  });
  const inFlight: Array<Promise<void>> = [];
  const over = pool.open();
  let bytesSent = 0;
  try {
    while (bytesSent < expectedBytes) {
      // At most RING_SLOTS chunks in flight: wait until the socket took the oldest, or the client left.
      const oldest = inFlight.length >= RING_SLOTS ? inFlight.shift() : undefined;
      if (oldest !== undefined && (await Promise.race([oldest, gone])) === 'gone') return { kind: 'client-gone', bytesSent };
      // A second buffer only when nobody waits for one. Else this stream first
      // lets its own write finish (and its buffer go), then queues in turn: a
      // stream whose client is slow holds one buffer, not two, while others wait.
      let buffer = inFlight.length > 0 ? pool.tryAcquire() : undefined;
      const own = buffer === undefined ? inFlight.shift() : undefined;
      if (own !== undefined && (await Promise.race([own, gone])) === 'gone') return { kind: 'client-gone', bytesSent };
      if (buffer === undefined) {
        try {
          buffer = await pool.acquire(left.signal);
        } catch {
          return { kind: 'client-gone', bytesSent };
        }
      }
      let lent = false;
      try {
        const wantBytes = Math.min(buffer.length, expectedBytes - bytesSent);
        const { bytesRead } = await handle.read(buffer, 0, wantBytes, start + bytesSent);
        if (bytesRead === 0) throw new Error(`file ended after ${bytesSent} of ${expectedBytes} bytes`);
        if (res.destroyed) return { kind: 'client-gone', bytesSent };
        if (!res.headersSent) {
          writeHead();
          if (counter !== undefined) counter.bytesSent = 0;
        }
        bytesSent += bytesRead;
        if (counter !== undefined) counter.bytesSent = bytesSent;
        inFlight.push(lend(res, pool, buffer, bytesRead));
        lent = true;
      } finally {
        if (!lent) pool.release(buffer);
      }
    }
    if (!res.headersSent) writeHead();
    // End only once the socket took every write: a response that has ended is
    // fair game for the server's closeIdleConnections() (on close), which
    // would cut what is still being sent.
    for (const write of inFlight) if ((await Promise.race([write, gone])) === 'gone') return { kind: 'client-gone', bytesSent };
    res.end();
    return { kind: 'complete', bytesSent };
  } catch (err) {
    return sendFailed(res, err, bytesSent);
  } finally {
    over();
    await handle.close().catch(() => {});
  }
}
