// The protobuf wire format, as much of it as the codecs generated from
// ./proto (proto-codecs.ts, by hack/gen-protos.ts) need: varints, int64 as
// Number (sizes stay far below 2^53; larger values are refused, not
// rounded), strings and bytes, nested messages, map<string, string> entries,
// and skipping unknown fields of every wire type. Reads are bounded by the
// enclosing message: truncated or malformed input throws ProtoDecodeError
// (one line), never reads past the end and never loops.

/** Malformed protobuf input. */
export class ProtoDecodeError extends Error {
  override readonly name = 'ProtoDecodeError';
}

export interface ProtoReader {
  readonly buf: Buffer;
  pos: number;
  /** End of the message being read (the enclosing length-delimited field, or the buffer). */
  limit: number;
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH = 2;
const WIRE_START_GROUP = 3;
const WIRE_END_GROUP = 4;
const WIRE_FIXED32 = 5;
/** Nested groups skipped at most (groups are long deprecated; this only bounds garbage). */
const MAX_GROUP_DEPTH = 64;
const TWO_32 = 4294967296;

/** The low and high 32 bits of the last varint read (no allocation per varint). */
const varint = { lo: 0, hi: 0 };

function truncated(r: ProtoReader, what: string): ProtoDecodeError {
  return new ProtoDecodeError(`truncated ${what} at byte ${r.pos}`);
}

/** Reads a varint of up to 10 bytes into `varint` (bits past 64 are dropped, as every protobuf runtime does). */
function readVarintParts(r: ProtoReader): void {
  let lo = 0;
  let hi = 0;
  for (let i = 0; ; i++) {
    if (i === 10) throw new ProtoDecodeError(`varint longer than 10 bytes at byte ${r.pos}`);
    if (r.pos >= r.limit) throw truncated(r, 'varint');
    const b = r.buf[r.pos++]!;
    if (i < 4) lo |= (b & 0x7f) << (7 * i);
    else if (i === 4) {
      lo |= (b & 0x0f) << 28;
      hi |= (b & 0x7f) >> 4;
    } else hi |= (b & 0x7f) << (7 * i - 32);
    if (b < 0x80) break;
  }
  varint.lo = lo >>> 0;
  varint.hi = hi >>> 0;
}

/** An int64 as a Number; refuses values beyond ±(2^53 - 1). */
export function readInt64(r: ProtoReader): number {
  const b = r.buf[r.pos];
  if (b !== undefined && b < 0x80 && r.pos < r.limit) {
    r.pos++;
    return b;
  }
  const start = r.pos;
  readVarintParts(r);
  let { lo, hi } = varint;
  const negative = hi >= 0x80000000;
  if (negative) {
    // Two's complement: the magnitude is ~value + 1.
    lo = (~lo + 1) >>> 0;
    hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
  }
  if (hi > 0x1fffff) throw new ProtoDecodeError(`int64 at byte ${start} is 2^53 or more in magnitude`);
  const magnitude = hi * TWO_32 + lo;
  return negative ? -magnitude : magnitude;
}

/** An int32 (a varint of up to 10 bytes, its low 32 bits as signed). */
export function readInt32(r: ProtoReader): number {
  readVarintParts(r);
  return varint.lo | 0;
}

/** A uint32 varint that must fit 32 bits (tags, lengths). */
function readUint32(r: ProtoReader, what: string): number {
  const start = r.pos;
  readVarintParts(r);
  if (varint.hi !== 0) throw new ProtoDecodeError(`${what} at byte ${start} does not fit 32 bits`);
  return varint.lo;
}

/** The next field's tag (field number << 3 | wire type). */
export function readTag(r: ProtoReader): number {
  const start = r.pos;
  const tag = readUint32(r, 'tag');
  if (tag >>> 3 === 0) throw new ProtoDecodeError(`field number 0 at byte ${start}`);
  return tag;
}

/** The length of a length-delimited field, checked against what is left of the message. */
function readLength(r: ProtoReader): number {
  const start = r.pos;
  const length = readUint32(r, 'length');
  if (length > r.limit - r.pos)
    throw new ProtoDecodeError(`length ${length} at byte ${start} runs past the end of the message (${r.limit - r.pos} bytes left)`);
  return length;
}

export function readBytes(r: ProtoReader): Buffer {
  const length = readLength(r);
  const bytes = r.buf.subarray(r.pos, r.pos + length);
  r.pos += length;
  return bytes;
}

export function readString(r: ProtoReader): string {
  const length = readLength(r);
  const text = r.buf.toString('utf8', r.pos, r.pos + length);
  r.pos += length;
  return text;
}

/** A nested message: `read` sees only its bytes. */
export function readMessage<T>(r: ProtoReader, read: (r: ProtoReader) => T): T {
  const length = readLength(r);
  const outer = r.limit;
  r.limit = r.pos + length;
  const value = read(r);
  r.limit = outer;
  return value;
}

/** One entry of a map<string, string> (key 1, value 2, both '' when absent; a later entry of a key wins). */
export function readStringMapEntry(r: ProtoReader, into: Record<string, string>): void {
  readMessage(r, (entry) => {
    let key = '';
    let value = '';
    while (entry.pos < entry.limit) {
      const tag = readTag(entry);
      if (tag === 10) key = readString(entry);
      else if (tag === 18) value = readString(entry);
      else skipField(entry, tag);
    }
    into[key] = value;
  });
}

function skipBytes(r: ProtoReader, n: number, what: string): void {
  if (n > r.limit - r.pos) throw truncated(r, what);
  r.pos += n;
}

/** Skips the value of a field not in the schema (or of a known field with another wire type), of any wire type. */
export function skipField(r: ProtoReader, tag: number): void {
  const groups: number[] = [];
  let current = tag;
  for (;;) {
    const wireType = current & 7;
    if (wireType === WIRE_VARINT) readVarintParts(r);
    else if (wireType === WIRE_FIXED64) skipBytes(r, 8, 'fixed64');
    else if (wireType === WIRE_LENGTH) {
      const length = readLength(r);
      r.pos += length;
    } else if (wireType === WIRE_FIXED32) skipBytes(r, 4, 'fixed32');
    else if (wireType === WIRE_START_GROUP) {
      if (groups.length === MAX_GROUP_DEPTH) throw new ProtoDecodeError(`groups nested deeper than ${MAX_GROUP_DEPTH} at byte ${r.pos}`);
      groups.push(current >>> 3);
    } else if (wireType === WIRE_END_GROUP) {
      if (groups.pop() !== current >>> 3) throw new ProtoDecodeError(`unmatched end of group ${current >>> 3} before byte ${r.pos}`);
    } else throw new ProtoDecodeError(`invalid wire type ${wireType} before byte ${r.pos}`);
    if (groups.length === 0) return;
    if (r.pos >= r.limit) throw truncated(r, 'group');
    current = readTag(r);
  }
}

/** Decodes a whole buffer as one message; errors name the message type. */
export function decodeMessage<T>(type: string, bytes: Buffer, read: (r: ProtoReader) => T): T {
  try {
    return read({ buf: bytes, pos: 0, limit: bytes.length });
  } catch (err) {
    if (err instanceof ProtoDecodeError) throw new ProtoDecodeError(`${type}: ${err.message}`);
    throw err;
  }
}

/** Encoded fields, concatenated at the end. */
export interface ProtoWriter {
  readonly parts: Buffer[];
}

function varintBytes(value: bigint): Buffer {
  const bytes: number[] = [];
  let v = BigInt.asUintN(64, value);
  while (v >= 0x80n) {
    bytes.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  bytes.push(Number(v));
  return Buffer.from(bytes);
}

function smallVarintBytes(value: number): Buffer {
  const bytes: number[] = [];
  let v = value;
  while (v >= 0x80) {
    bytes.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

function writeTag(w: ProtoWriter, field: number, wireType: number): void {
  w.parts.push(smallVarintBytes(field * 8 + wireType));
}

function writeLengthDelimited(w: ProtoWriter, field: number, bytes: Buffer): void {
  writeTag(w, field, WIRE_LENGTH);
  w.parts.push(smallVarintBytes(bytes.length), bytes);
}

/** A string field; '' and undefined are the default and are not written. */
export function writeString(w: ProtoWriter, field: number, value: string | undefined): void {
  if (value === undefined || value === '') return;
  writeLengthDelimited(w, field, Buffer.from(value, 'utf8'));
}

/** Every element of a repeated string field, '' included. */
export function writeRepeatedString(w: ProtoWriter, field: number, values: readonly string[] | undefined): void {
  for (const value of values ?? []) writeLengthDelimited(w, field, Buffer.from(value, 'utf8'));
}

export function writeBytes(w: ProtoWriter, field: number, value: Uint8Array | undefined): void {
  if (value === undefined || value.length === 0) return;
  writeLengthDelimited(w, field, Buffer.from(value));
}

/** An int64 field from a safe integer (anything else is refused); 0 is not written. */
export function writeInt64(w: ProtoWriter, field: number, value: number | undefined): void {
  if (value === undefined || value === 0) return;
  if (!Number.isSafeInteger(value)) throw new RangeError(`int64 field ${field}: ${value} is not a safe integer`);
  writeTag(w, field, WIRE_VARINT);
  w.parts.push(value > 0 ? smallVarintBytes(value) : varintBytes(BigInt(value)));
}

/** An int32 field (negative values take 10 bytes, sign-extended); 0 is not written. */
export function writeInt32(w: ProtoWriter, field: number, value: number | undefined): void {
  if (value === undefined || value === 0) return;
  if (!Number.isInteger(value) || value < -0x80000000 || value > 0x7fffffff) throw new RangeError(`int32 field ${field}: ${value} is out of range`);
  writeTag(w, field, WIRE_VARINT);
  w.parts.push(value > 0 ? smallVarintBytes(value) : varintBytes(BigInt(value)));
}

/** A nested message; null and undefined are absent and not written. */
export function writeMessage<T>(w: ProtoWriter, field: number, value: T | null | undefined, write: (w: ProtoWriter, value: T) => void): void {
  if (value === undefined || value === null) return;
  writeLengthDelimited(w, field, encodeMessage(value, write));
}

/** Every element of a repeated message field. */
export function writeRepeatedMessage<T>(w: ProtoWriter, field: number, values: readonly T[] | undefined, write: (w: ProtoWriter, value: T) => void): void {
  for (const value of values ?? []) writeLengthDelimited(w, field, encodeMessage(value, write));
}

/** A map<string, string> field: one entry message per key, key and value always written. */
export function writeStringMap(w: ProtoWriter, field: number, map: Readonly<Record<string, string>> | undefined): void {
  for (const [key, value] of Object.entries(map ?? {})) {
    const entry: ProtoWriter = { parts: [] };
    writeLengthDelimited(entry, 1, Buffer.from(key, 'utf8'));
    writeLengthDelimited(entry, 2, Buffer.from(value, 'utf8'));
    writeLengthDelimited(w, field, Buffer.concat(entry.parts));
  }
}

export function encodeMessage<T>(value: T, write: (w: ProtoWriter, value: T) => void): Buffer {
  const w: ProtoWriter = { parts: [] };
  write(w, value);
  return Buffer.concat(w.parts);
}
