// Property test of the gRPC frame reader (grpc-frames.ts): however the bytes
// of a run of messages are cut into chunks (DATA frames), the reader hands out
// exactly those messages, in order, and keeps nothing; a prefix that flags
// compression or names a length above the limit fails at once, before the
// message's bytes. Settings: tests/support/fuzz.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { checkProperty } from '../../tests/support/fuzz.ts';
import { createGrpcFrameReader, grpcFrame } from './grpc-frames.ts';
import { GrpcError, GrpcStatus } from './grpc-status.ts';

const messages = fc.array(
  fc.oneof(
    fc.uint8Array({ maxLength: 40 }),
    fc.integer({ min: 0, max: 70_000 }).map((n) => new Uint8Array(n).fill(n % 251)),
  ),
  { maxLength: 8 },
);

/** The bytes cut at the given offsets. */
function chunked(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const point of [...points, bytes.length]) {
    out.push(bytes.subarray(from, point));
    from = point;
  }
  return out;
}

test('messages come out whole and in order, however the stream is cut', async (t) => {
  await checkProperty(
    t,
    fc.property(messages, fc.array(fc.nat(), { maxLength: 30 }), (sent, cuts) => {
      const wire = Buffer.concat(sent.map((m) => grpcFrame(Buffer.from(m))));
      const reader = createGrpcFrameReader(1024 * 1024);
      const received: Buffer[] = [];
      for (const chunk of chunked(wire, cuts)) {
        reader.push(chunk);
        for (let m = reader.next(); m !== undefined; m = reader.next()) received.push(m);
      }
      assert.deepEqual(
        received.map((m) => m.toString('hex')),
        sent.map((m) => Buffer.from(m).toString('hex')),
      );
      assert.equal(reader.buffered, 0);
    }),
    300,
  );
});

test('a cut stream leaves the partial message counted as buffered', async (t) => {
  await checkProperty(
    t,
    fc.property(fc.uint8Array({ maxLength: 100 }), fc.nat(), (message, cut) => {
      const frame = grpcFrame(Buffer.from(message));
      const at = cut % frame.length;
      const reader = createGrpcFrameReader(1024);
      reader.push(frame.subarray(0, at));
      assert.equal(reader.next(), undefined);
      assert.equal(reader.buffered, at);
    }),
    300,
  );
});

test('a compressed or oversized message fails on its prefix', () => {
  const refuse = (prefix: number[], code: number, pattern: RegExp): void => {
    const reader = createGrpcFrameReader(1000);
    reader.push(Buffer.from(prefix));
    assert.throws(
      () => reader.next(),
      (err: unknown) => err instanceof GrpcError && err.code === code && pattern.test(err.message),
    );
  };
  refuse([1, 0, 0, 0, 3], GrpcStatus.INTERNAL, /^13 INTERNAL: received a compressed message, but no compression was negotiated$/);
  refuse([2, 0, 0, 0, 3], GrpcStatus.INTERNAL, /^13 INTERNAL: received a message with flags 2$/);
  refuse([0, 0, 0, 0x03, 0xe9], GrpcStatus.RESOURCE_EXHAUSTED, /^8 RESOURCE_EXHAUSTED: received a message of 1001 bytes, above the limit of 1000$/);
  const reader = createGrpcFrameReader(1000);
  reader.push(Buffer.from([0, 0, 0, 0x03, 0xe8]));
  assert.equal(reader.next(), undefined, 'exactly the limit waits for its bytes');
});
