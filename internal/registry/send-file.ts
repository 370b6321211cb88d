// The fast path for file-backed content: reads the file into a small ring of
// reused buffers and writes them to the raw response. A buffer is read into
// again only after the socket has taken the previous write (its write
// callback), so nothing is copied twice and no fresh buffer is allocated per
// chunk; fs.ReadStream allocates a new buffer per chunk, which measurably
// costs throughput at GB/s. Same contract as streamBody: headers only once the
// first chunk is read, any later failure destroys the response, a client that
// goes away stops the reads. The file handle is always closed.
import type { FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import type { StreamOptions, StreamOutcome } from './send-stream.ts';

/** Read size: large reads, few syscalls and event-loop turns. */
export const FILE_CHUNK_BYTES = 1024 * 1024;
/** Buffers in the ring: one being read while the other is being written. */
const RING_SLOTS = 2;

function written(res: ServerResponse, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    res.write(chunk, (err) => (err ? reject(err) : resolve()));
  });
}

function closed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed) resolve();
    else res.once('close', () => resolve());
  });
}

/**
 * Writes `expectedBytes` bytes of the file from byte `start` to `res`, then
 * ends it. Rejects only when nothing has been sent yet.
 */
export async function streamFile(
  res: ServerResponse,
  handle: FileHandle,
  start: number,
  options: StreamOptions & { chunkBytes?: number },
): Promise<StreamOutcome> {
  const { expectedBytes, writeHead, counter } = options;
  const chunkBytes = Math.max(1, Math.min(options.chunkBytes ?? FILE_CHUNK_BYTES, expectedBytes));
  const ring = Array.from({ length: Math.min(RING_SLOTS, Math.ceil(expectedBytes / chunkBytes) || 1) }, () =>
    Buffer.allocUnsafeSlow(chunkBytes),
  );
  const inFlight: Array<Promise<void> | undefined> = [];
  const gone = closed(res).then(() => 'gone' as const);
  let bytesSent = 0;
  try {
    for (let i = 0; bytesSent < expectedBytes; i++) {
      const slot = i % ring.length;
      const buffer = ring[slot] as Buffer;
      // Wait until the socket took what this buffer held, or the client left.
      if (inFlight[slot] !== undefined && (await Promise.race([inFlight[slot], gone])) === 'gone') {
        return { kind: 'client-gone', bytesSent };
      }
      const wantBytes = Math.min(chunkBytes, expectedBytes - bytesSent);
      const { bytesRead } = await handle.read(buffer, 0, wantBytes, start + bytesSent);
      if (bytesRead === 0) throw new Error(`file ended after ${bytesSent} of ${expectedBytes} bytes`);
      if (res.destroyed) return { kind: 'client-gone', bytesSent };
      if (!res.headersSent) {
        writeHead();
        if (counter !== undefined) counter.bytesSent = 0;
      }
      bytesSent += bytesRead;
      if (counter !== undefined) counter.bytesSent = bytesSent;
      const write = written(res, buffer.subarray(0, bytesRead));
      write.catch(() => {});
      inFlight[slot] = write;
    }
    if (!res.headersSent) writeHead();
    res.end();
    return { kind: 'complete', bytesSent };
  } catch (err) {
    if (!res.headersSent) throw err;
    if (res.destroyed) return { kind: 'client-gone', bytesSent };
    res.destroy();
    return { kind: 'failed', bytesSent, error: err instanceof Error ? err : new Error(String(err)) };
  } finally {
    await handle.close().catch(() => {});
  }
}
