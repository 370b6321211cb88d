// A bounded pool of equal-sized buffers shared by every blob stream of the
// file fast path (send-file.ts), so that memory stays bounded whatever the
// number of streams: 200 streams with a private 2 x 1 MiB ring each would hold
// 400 MiB; with the pool they hold at most `maxBuffers` x `bufferBytes`.
//
// A stream borrows a buffer per chunk and gives it back once the socket has
// taken the chunk (its write callback) or the response has closed. Buffers are
// allocated on first need and kept for reuse while any stream is open
// (allocating 1 MiB per chunk costs throughput at GB/s); once the last stream
// is over they are let go, so an idle agent does not keep the memory of its
// busiest moment. When all are lent, borrowers wait in FIFO order, so every
// stream moves on in turn; a waiter whose client left cancels its wait with
// an AbortSignal and never takes a buffer.

export interface BufferPoolOptions {
  /** Size of every buffer (the read size of the file fast path). */
  bufferBytes: number;
  /** Buffers in the pool at most: the pool never holds more than bufferBytes x maxBuffers. */
  maxBuffers: number;
}

export interface BufferPoolStats {
  bufferBytes: number;
  maxBuffers: number;
  /** Buffers allocated so far (never more than maxBuffers). */
  allocated: number;
  /** Buffers lent out now. */
  lent: number;
  /** Borrowers waiting for a buffer now. */
  waiting: number;
  /** Streams open now (open() not yet ended). */
  streams: number;
}

export interface BufferPool {
  readonly bufferBytes: number;
  /** A stream begins; call the function returned when it is over. Buffers are kept only while a stream is open. */
  open(): () => void;
  /** A buffer at once when one is free (or can still be allocated), else undefined. */
  tryAcquire(): Buffer | undefined;
  /**
   * A buffer, at once or as soon as one is given back (FIFO). Rejects with
   * the signal's reason when it aborts first; nothing is taken then.
   */
  acquire(signal?: AbortSignal): Promise<Buffer>;
  /** Gives a buffer back; it must have come from this pool and not be in use any more. */
  release(buffer: Buffer): void;
  /** True while somebody waits for a buffer. */
  contended(): boolean;
  stats(): BufferPoolStats;
}

interface Waiter {
  resolve(buffer: Buffer): void;
  reject(reason: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

/** Why a wait was given up: the signal's reason when it is an Error (an AbortSignal's default one is). */
function abortReason(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : new Error('the wait for a buffer was aborted', { cause: reason });
}

export function createBufferPool(options: BufferPoolOptions): BufferPool {
  const bufferBytes = Math.max(1, Math.floor(options.bufferBytes));
  const maxBuffers = Math.max(1, Math.floor(options.maxBuffers));
  const free: Buffer[] = [];
  const waiters: Waiter[] = [];
  const owned = new WeakSet<Buffer>();
  let allocated = 0;
  let lent = 0;
  let streams = 0;

  const take = (): Buffer | undefined => {
    let buffer = free.pop();
    if (buffer === undefined && allocated < maxBuffers) {
      buffer = Buffer.allocUnsafeSlow(bufferBytes);
      owned.add(buffer);
      allocated++;
    }
    if (buffer !== undefined) lent++;
    return buffer;
  };

  return {
    bufferBytes,
    open() {
      streams++;
      let over = false;
      return () => {
        if (over) return;
        over = true;
        streams--;
        if (streams === 0) {
          allocated -= free.length;
          free.length = 0;
        }
      };
    },
    tryAcquire: () => (waiters.length > 0 ? undefined : take()),
    acquire(signal) {
      if (signal?.aborted === true) return Promise.reject(abortReason(signal));
      if (waiters.length === 0) {
        const buffer = take();
        if (buffer !== undefined) return Promise.resolve(buffer);
      }
      return new Promise<Buffer>((resolve, reject) => {
        const waiter: Waiter = {
          resolve,
          reject,
          signal,
          onAbort: () => {
            const at = waiters.indexOf(waiter);
            if (at >= 0) waiters.splice(at, 1);
            reject(abortReason(signal));
          },
        };
        signal?.addEventListener('abort', waiter.onAbort, { once: true });
        waiters.push(waiter);
      });
    },
    release(buffer) {
      if (!owned.has(buffer)) throw new Error('buffer does not belong to this pool');
      const waiter = waiters.shift();
      if (waiter !== undefined) {
        waiter.signal?.removeEventListener('abort', waiter.onAbort);
        waiter.resolve(buffer);
        return;
      }
      lent--;
      if (streams > 0) free.push(buffer);
      else allocated--;
    },
    contended: () => waiters.length > 0,
    stats: () => ({ bufferBytes, maxBuffers, allocated, lent, waiting: waiters.length, streams }),
  };
}
