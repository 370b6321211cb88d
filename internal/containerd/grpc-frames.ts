// gRPC's length-prefixed messages on an HTTP/2 stream: a 5-byte prefix (a
// compressed flag, then the length as a big-endian uint32) before each
// message. DATA frames do not follow message boundaries: a message may span
// many frames (containerd's Read sends 1 MiB messages in 16 KiB frames), and
// one frame may hold several messages. The reader buffers what arrived and
// hands out whole messages one at a time, so that the caller can stop
// between two (backpressure). mirra asks for no compression
// (grpc-accept-encoding: identity), so a compressed message is refused, as is
// one above the size limit (checked on its prefix, before its bytes arrive).
import { GrpcError, GrpcStatus } from './grpc-status.ts';

const PREFIX_BYTES = 5;

/** A request message with its prefix (uncompressed). */
export function grpcFrame(message: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(PREFIX_BYTES + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, PREFIX_BYTES);
  return frame;
}

export interface GrpcFrameReader {
  /** Appends bytes received. */
  push(chunk: Buffer): void;
  /** The next whole message, undefined until all its bytes arrived; throws GrpcError on a compressed or oversized one. */
  next(): Buffer | undefined;
  /** Bytes received and not yet handed out (a partial message when the stream ends). */
  readonly buffered: number;
}

export function createGrpcFrameReader(maxMessageBytes: number): GrpcFrameReader {
  const chunks: Buffer[] = [];
  let buffered = 0;
  /** The length of the message whose prefix was read, or -1 while waiting for a prefix. */
  let pending = -1;

  /** Removes and returns the next n bytes (n <= buffered); one chunk's view when it holds them all. */
  const take = (n: number): Buffer => {
    buffered -= n;
    const first = chunks[0]!;
    if (first.length >= n) {
      if (first.length === n) chunks.shift();
      else chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = chunks[0]!;
      const used = Math.min(chunk.length, n - filled);
      chunk.copy(out, filled, 0, used);
      filled += used;
      if (used === chunk.length) chunks.shift();
      else chunks[0] = chunk.subarray(used);
    }
    return out;
  };

  const readPrefix = (): void => {
    const prefix = take(PREFIX_BYTES);
    const flag = prefix[0]!;
    const length = prefix.readUInt32BE(1);
    if (flag === 1) throw new GrpcError(GrpcStatus.INTERNAL, 'received a compressed message, but no compression was negotiated');
    if (flag !== 0) throw new GrpcError(GrpcStatus.INTERNAL, `received a message with flags ${flag}`);
    if (length > maxMessageBytes)
      throw new GrpcError(GrpcStatus.RESOURCE_EXHAUSTED, `received a message of ${length} bytes, above the limit of ${maxMessageBytes}`);
    pending = length;
  };

  return {
    push(chunk) {
      if (chunk.length === 0) return;
      chunks.push(chunk);
      buffered += chunk.length;
    },
    next() {
      if (pending < 0) {
        if (buffered < PREFIX_BYTES) return undefined;
        readPrefix();
      }
      if (buffered < pending) return undefined;
      const message = pending === 0 ? Buffer.alloc(0) : take(pending);
      pending = -1;
      return message;
    },
    get buffered() {
      return buffered + (pending < 0 ? 0 : PREFIX_BYTES);
    },
  };
}
