// The buffers one peer connection reads into, reused (net's `onread`): a
// body's chunks are views of them, lent to whoever streams them on, and a
// buffer is read into again only once every view of it was given back. When
// none is free the ring makes a new one (reading never waits on a give-back:
// a slow reader pauses its response, which pauses the socket). A view never
// given back (a stream cut, a body dropped, a reader that does not give
// back) only keeps its buffer out of the ring, which then goes with the
// garbage, as every chunk did before. So a buffer is never written while a
// view of it may still be read: giving back is the only way in.
//
// Why: node:http's client gets a fresh 64 KiB buffer from Node for every read
// of a socket. On the peer path each carried blob bytes on to containerd and
// was garbage a moment later, but freed only at V8's next full collection,
// which external memory starts every 64 MiB or so: under bench:load-peer the
// agent's C heap swung by 60-110 MiB with them.

/** Size of one read buffer: Node's own read size. */
export const READ_BUFFER_BYTES = 64 * 1024;
/** Free buffers a connection keeps while it waits for its next request. */
const IDLE_KEEP = 2;
/**
 * Free buffers a connection keeps at most (256 KiB): a body held back whole
 * for its digest check (up to 32 MiB) lends every buffer until it is
 * verified, and all come back at once; the ones beyond go with the garbage
 * instead of staying with the connection for as long as it streams (up to
 * 37 connections per peer). A streaming connection needs few free ones: its
 * lent buffers come back about as fast as it reads.
 */
const MAX_FREE = 4;

interface Slot {
  readonly buf: Buffer;
  /** The read in progress on it, plus every view not given back yet. */
  refs: number;
  /** One reference fewer: back to its ring's free buffers at none. */
  readonly release: () => void;
}

/** The read buffer of each view lent and not given back yet: one map per stream client, shared by its connections. */
export type LentBuffers = WeakMap<Uint8Array, Slot>;

export function createLentBuffers(): LentBuffers {
  return new WeakMap();
}

export interface ReadRing {
  /** For `onread.buffer`: the buffer of the next read (the last one if all its views are back, else a free one, else a new one). */
  next(): Buffer;
  /** The read of `nread` bytes into the current buffer came; its views may be lent while `during` runs. */
  read(nread: number, during: (bytes: Buffer) => void): void;
  /** A view of the current read goes out (lent): it must be given back. */
  lend(view: Buffer): void;
  /** Free buffers beyond a few are let go (the connection waits for a request). */
  trim(): void;
  /** Buffers ever made (reads into reused buffers do not count). */
  readonly allocated: number;
}

interface RingState {
  readonly lent: LentBuffers;
  readonly bufferBytes: number;
  readonly free: Slot[];
  current: Slot | undefined;
  allocated: number;
}

function released(s: RingState, slot: Slot): void {
  slot.refs--;
  if (slot.refs > 0 || slot === s.current || s.free.length >= MAX_FREE) return;
  s.free.push(slot);
}

function newSlot(s: RingState): Slot {
  const slot: Slot = { buf: Buffer.allocUnsafeSlow(s.bufferBytes), refs: 0, release: () => released(s, slot) };
  s.allocated++;
  return slot;
}

export function createReadRing(lent: LentBuffers, bufferBytes = READ_BUFFER_BYTES): ReadRing {
  const s: RingState = { lent, bufferBytes, free: [], current: undefined, allocated: 0 };
  return {
    next() {
      const previous = s.current;
      if (previous !== undefined && previous.refs === 0) return previous.buf;
      const slot = s.free.pop() ?? newSlot(s);
      s.current = slot;
      return slot.buf;
    },
    read(nread, during) {
      const slot = s.current;
      if (slot === undefined) throw new Error('read ring: a read without a buffer');
      slot.refs++;
      try {
        during(slot.buf.subarray(0, nread));
      } finally {
        slot.refs--;
      }
    },
    lend(view) {
      const slot = s.current;
      if (slot === undefined || view.buffer !== slot.buf.buffer) throw new Error('read ring: lending a view of another buffer');
      slot.refs++;
      s.lent.set(view, slot);
    },
    trim() {
      s.free.splice(0, Math.max(0, s.free.length - IDLE_KEEP));
    },
    get allocated() {
      return s.allocated;
    },
  };
}

/**
 * Gives back a view a ring lent: its buffer may be read into again once all
 * its views are back. A no-op for any other chunk, for a view given back
 * already, and for a part of a view (only the very view lent counts).
 */
export function giveBack(lent: LentBuffers, chunk: Uint8Array): boolean {
  const slot = lent.get(chunk);
  if (slot === undefined) return false;
  lent.delete(chunk);
  slot.release();
  return true;
}
