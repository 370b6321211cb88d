// The binary form of one shard: a Golomb-Rice coded set (GCS). Each key's
// filter hash is reduced into [0, n*m) (n keys in the shard, m = range per key,
// false-positive rate <= 1/m), the values are sorted and their gaps are stored
// Rice-coded with parameter k. See docs/SUMMARY-FORMAT.md.
//
//   varint m | byte k | varint n | n x (unary(gap >> k), gap & (2^k - 1)) | zero padding
import { SummaryError } from './errors.ts';

export const MIN_RANGE_PER_KEY = 2;
export const MAX_RANGE_PER_KEY = 1024;
/** Largest shard value accepted (binary bytes): the API's whole annotation limit. */
export const MAX_SHARD_BYTES = 256 * 1024;

export interface ShardCode {
  /** Range per key: values live in [0, n*m). */
  readonly m: number;
  /** Rice parameter. */
  readonly k: number;
  /** Sorted (non-decreasing) values, one per key; duplicates allowed. */
  readonly values: Uint32Array;
}

/** The Rice parameters the format allows for a given m: 2^k <= m <= 2^(k+2). */
export function riceChoices(m: number): number[] {
  const choices: number[] = [];
  for (let k = 0; 2 ** k <= m; k++) if (m <= 2 ** (k + 2)) choices.push(k);
  return choices;
}

function varintBytes(value: number): number {
  let bytes = 1;
  for (let v = value; v >= 128; v = Math.floor(v / 128)) bytes++;
  return bytes;
}

function riceBits(values: Uint32Array, k: number): number {
  const divisor = 2 ** k;
  let bits = values.length * (k + 1);
  let prev = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    bits += Math.floor((v - prev) / divisor);
    prev = v;
  }
  return bits;
}

/** Picks the Rice parameter with the smallest encoding (ties: the smaller k). */
export function bestRice(values: Uint32Array, m: number): { k: number; bytes: number } {
  let best = { k: -1, bytes: Infinity };
  for (const k of riceChoices(m)) {
    const bytes = varintBytes(m) + 1 + varintBytes(values.length) + Math.ceil(riceBits(values, k) / 8);
    if (bytes < best.bytes) best = { k, bytes };
  }
  return best;
}

function writeVarint(out: Uint8Array, at: number, value: number): number {
  let pos = at;
  let v = value;
  while (v >= 128) {
    out[pos++] = (v % 128) | 128;
    v = Math.floor(v / 128);
  }
  out[pos++] = v;
  return pos;
}

export function encodeShard(code: ShardCode): Uint8Array {
  const { m, k, values } = code;
  const headerBytes = varintBytes(m) + 1 + varintBytes(values.length);
  const out = new Uint8Array(headerBytes + Math.ceil(riceBits(values, k) / 8));
  let pos = writeVarint(out, 0, m);
  out[pos++] = k;
  pos = writeVarint(out, pos, values.length);
  let bit = pos * 8;
  const divisor = 2 ** k;
  let prev = 0;
  for (let i = 0; i < values.length; i++) {
    const gap = values[i]! - prev;
    prev = values[i]!;
    let q = Math.floor(gap / divisor);
    const r = gap - q * divisor;
    for (; q > 0; q--, bit++) out[bit >>> 3]! |= 0x80 >>> (bit & 7);
    bit++; // the terminating zero
    for (let b = k - 1; b >= 0; b--, bit++) if ((r >>> b) & 1) out[bit >>> 3]! |= 0x80 >>> (bit & 7);
  }
  return out;
}

function readVarint(bytes: Uint8Array, at: number, what: string): [number, number] {
  let value = 0;
  let scale = 1;
  for (let pos = at; pos < bytes.length && pos < at + 5; pos++) {
    const byte = bytes[pos]!;
    value += (byte & 127) * scale;
    scale *= 128;
    if (byte < 128) {
      if (byte === 0 && pos > at) throw new SummaryError('shard', `non-canonical varint for ${what}`);
      return [value, pos + 1];
    }
  }
  throw new SummaryError('shard', `truncated or oversized varint for ${what}`);
}

/** Decodes and validates one shard; every allocation is bounded by the input length. */
export function decodeShard(bytes: Uint8Array): ShardCode {
  if (bytes.length > MAX_SHARD_BYTES) throw new SummaryError('limits', `shard of ${bytes.length} bytes exceeds ${MAX_SHARD_BYTES}`);
  const [m, afterM] = readVarint(bytes, 0, 'range per key');
  if (m < MIN_RANGE_PER_KEY || m > MAX_RANGE_PER_KEY) {
    throw new SummaryError('shard', `range per key ${m} outside [${MIN_RANGE_PER_KEY}, ${MAX_RANGE_PER_KEY}]`);
  }
  const k = bytes[afterM];
  if (k === undefined) throw new SummaryError('shard', 'truncated shard: no Rice parameter');
  if (!riceChoices(m).includes(k)) throw new SummaryError('shard', `Rice parameter ${k} not allowed for range per key ${m}`);
  const [n, start] = readVarint(bytes, afterM + 1, 'key count');
  const totalBits = bytes.length * 8;
  if (n * (k + 1) > totalBits - start * 8) throw new SummaryError('shard', `truncated shard: ${n} keys need more than ${bytes.length} bytes`);
  const range = n * m;
  const values = new Uint32Array(n);
  const divisor = 2 ** k;
  let bit = start * 8;
  let prev = 0;
  for (let i = 0; i < n; i++) {
    let q = 0;
    for (;;) {
      if (bit >= totalBits) throw new SummaryError('shard', 'truncated shard: unary run past the end');
      const one = (bytes[bit >>> 3]! >>> (7 - (bit & 7))) & 1;
      bit++;
      if (one === 0) break;
      q++;
    }
    if (bit + k > totalBits) throw new SummaryError('shard', 'truncated shard: remainder past the end');
    let r = 0;
    for (let b = 0; b < k; b++, bit++) r = r * 2 + ((bytes[bit >>> 3]! >>> (7 - (bit & 7))) & 1);
    const value = prev + q * divisor + r;
    if (value >= range) throw new SummaryError('shard', `value ${value} outside the shard's range ${range}`);
    values[i] = value;
    prev = value;
  }
  if (totalBits - bit >= 8) throw new SummaryError('shard', 'trailing bytes after the last key');
  for (; bit < totalBits; bit++) {
    if ((bytes[bit >>> 3]! >>> (7 - (bit & 7))) & 1) throw new SummaryError('shard', 'non-zero padding');
  }
  return { m, k, values };
}
