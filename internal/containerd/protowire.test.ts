// The protobuf wire format's edge cases, byte by byte: what protowire.ts
// refuses (with which one-line error) and what it takes. The generated codecs
// are compared with protobufjs on random messages in proto-codecs.fuzz.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeEnvelope, decodeReadContentResponse, decodeTimestamp, encodeReadContentRequest } from './proto-codecs.ts';
import { encodeMessage, ProtoDecodeError, writeInt32, writeInt64 } from './protowire.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/ /g, ''), 'hex');

function refuses(bytes: Buffer, pattern: RegExp): void {
  assert.throws(
    () => decodeReadContentResponse(bytes),
    (err: unknown) => err instanceof ProtoDecodeError && pattern.test(err.message) && !err.message.includes('\n'),
  );
}

test('int64 as Number: up to 2^53 - 1 either way, beyond refused', () => {
  assert.equal(decodeReadContentResponse(hex('08 ffffffffffffff0f')).offset, 2 ** 53 - 1);
  assert.equal(decodeReadContentResponse(hex('08 ffffffffffffffffff01')).offset, -1);
  assert.equal(decodeReadContentResponse(hex(`08 81${'80'.repeat(6)}f0ff01`)).offset, -(2 ** 53 - 1));
  refuses(hex('08 80808080808080 10'), /^containerd\.services\.content\.v1\.ReadContentResponse: int64 at byte 1 is 2\^53 or more in magnitude$/);
  refuses(hex('08 ffffffffffffffff7f'), /int64 at byte 1 is 2\^53 or more/);
  refuses(hex(`08 ${'80'.repeat(7)}f0ff01`), /int64 at byte 1 is 2\^53 or more/);
});

test('int32 takes the low 32 bits of a sign-extended varint', () => {
  assert.deepEqual(decodeTimestamp(hex('08 05 10 ffffffffffffffffff01')), { seconds: 5, nanos: -1 });
  assert.deepEqual(decodeTimestamp(hex('10 ffffffff07')), { seconds: 0, nanos: 2 ** 31 - 1 });
});

test('truncated, overlong and malformed input is refused with one line', () => {
  refuses(hex('08'), /truncated varint at byte 1/);
  refuses(hex('08 80'), /truncated varint at byte 2/);
  refuses(hex(`08 ${'80'.repeat(10)}01`), /varint longer than 10 bytes at byte 11/);
  refuses(hex('12 05 6162'), /length 5 at byte 1 runs past the end of the message \(2 bytes left\)/);
  refuses(hex('12 ffffffff0f'), /length 4294967295 at byte 1 runs past the end/);
  refuses(hex('12 8080808010'), /length at byte 1 does not fit 32 bits/);
  refuses(hex('02 00'), /field number 0 at byte 0/);
  refuses(hex('1e'), /invalid wire type 6 before byte 1/);
  refuses(hex('1f'), /invalid wire type 7 before byte 1/);
  refuses(hex('19 0102'), /truncated fixed64/);
  refuses(hex('1d 01'), /truncated fixed32/);
  refuses(hex('1c'), /unmatched end of group 3 before byte 1/);
  refuses(hex('1b 08 01'), /truncated group/);
  refuses(hex('1b 24'), /unmatched end of group 4/);
  refuses(Buffer.alloc(65 * 2, 0x1b), /groups nested deeper than 64/);
});

test('unknown fields of every wire type are skipped, known ones with another wire type too', () => {
  const unknown = hex('18 96 01  21 0102030405060708  2a 03 616263  2d 01020304  33 08 01 1a 00 34  10 07');
  assert.deepEqual(decodeReadContentResponse(Buffer.concat([unknown, hex('08 2a 12 02 6869')])), { offset: 42, data: Buffer.from('hi') });
});

test('a nested message cannot read past its own length', () => {
  // Envelope.timestamp (field 1) of 2 bytes whose varint would continue into the next field.
  assert.throws(
    () => decodeEnvelope(hex('0a 02 08 80 12 01 61')),
    /^ProtoDecodeError: containerd\.services\.events\.v1\.Envelope: truncated varint at byte 4$/,
  );
  assert.deepEqual(decodeEnvelope(hex('0a 02 08 07 12 01 61')), { timestamp: { seconds: 7, nanos: 0 }, namespace: 'a', topic: '', event: null });
});

test('bytes fields are views of the input; absent ones are empty buffers', () => {
  const input = hex('12 03 010203');
  const decoded = decodeReadContentResponse(input);
  assert.equal(decoded.data.buffer, input.buffer);
  assert.deepEqual(decodeReadContentResponse(Buffer.alloc(0)), { offset: 0, data: Buffer.alloc(0) });
});

test('encoders skip defaults and refuse what int64 and int32 cannot hold', () => {
  assert.deepEqual(encodeReadContentRequest({ digest: '', offset: 0, size: 0 }), Buffer.alloc(0));
  assert.deepEqual(encodeReadContentRequest({ digest: 'd', offset: 300, size: -1 }), hex('0a 01 64  10 ac02  18 ffffffffffffffffff01'));
  assert.throws(() => encodeReadContentRequest({ offset: 2 ** 53 }), /^RangeError: int64 field 2: 9007199254740992 is not a safe integer$/);
  assert.throws(() => encodeReadContentRequest({ size: 1.5 }), /int64 field 3: 1\.5 is not a safe integer/);
  assert.throws(() => encodeMessage(2 ** 31, (w, v) => writeInt32(w, 1, v)), /int32 field 1: 2147483648 is out of range/);
  assert.deepEqual(
    encodeMessage(-(2 ** 53 - 1), (w, v) => writeInt64(w, 1, v)),
    hex(`08 81${'80'.repeat(6)}f0ff01`),
  );
});
