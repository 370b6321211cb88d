// Hashing for routing: xxh64 of each key and agent name (xxhash-wasm), split
// once into 32-bit halves so that everything after it (the key number and
// its shard by jump consistent hash, rendezvous weights) runs on 32-bit
// integer math.
import xxhash from 'xxhash-wasm';

/** A key's xxh64 as two unsigned 32-bit halves. */
export interface KeyHash {
  readonly hi: number;
  readonly lo: number;
}

export interface Hasher {
  /** xxh64 (seed 0) of the key's UTF-8 bytes. */
  hash(key: string): KeyHash;
  /** xxh64 of any string as 16 hex digits. */
  digest(value: string): string;
}

/** Instantiates the xxhash WebAssembly module once; the returned hasher is synchronous. */
export async function createHasher(): Promise<Hasher> {
  const api = await xxhash();
  return {
    hash(key: string): KeyHash {
      const h = api.h64(key);
      return keyHashOf(Number(h >> 32n), Number(h & 0xffffffffn));
    },
    digest(value: string): string {
      return api.h64ToString(value);
    },
  };
}

export function keyHashOf(hi: number, lo: number): KeyHash {
  return { hi: hi >>> 0, lo: lo >>> 0 };
}

/** MurmurHash3's 32-bit finaliser: a bijection with full avalanche. */
export function fmix32(value: number): number {
  let h = value | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Rendezvous (highest random weight) score of (key, peer); the peer's two seeds come from xxh64(name). */
export function rendezvousWeight(hash: KeyHash, peerHi: number, peerLo: number): number {
  return rendezvousWeight32(hash.hi, hash.lo, peerHi, peerLo);
}

/** rendezvousWeight on the key's halves (the lookup's loop). */
export function rendezvousWeight32(keyHi: number, keyLo: number, peerHi: number, peerLo: number): number {
  return fmix32(fmix32(keyHi ^ peerHi) ^ keyLo ^ peerLo);
}

const LCG_HI = 0x27bb2ee6; // 2862933555777941757 = 0x27BB2EE687B0B0FD
const LCG_LO = 0x87b0b0fd;

/** High 32 bits of the unsigned 64-bit product of two unsigned 32-bit integers. */
function mulHigh32(a: number, b: number): number {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const mid = ((a0 * b0) >>> 16) + (p01 % 65536) + (p10 % 65536);
  return (a1 * b1 + Math.floor(p01 / 65536) + Math.floor(p10 / 65536) + Math.floor(mid / 65536)) >>> 0;
}

/**
 * Jump consistent hash (Lamping & Veach 2014) of the 64-bit key hi:lo into
 * `buckets` buckets, bit-exact with the reference C++ (64-bit LCG emulated on
 * 32-bit halves). Returns 0 for buckets <= 1.
 */
export function jumpHash(hi: number, lo: number, buckets: number): number {
  let b = -1;
  let j = 0;
  let keyHi = hi >>> 0;
  let keyLo = lo >>> 0;
  if (buckets <= 1) return 0;
  while (j < buckets) {
    b = j;
    // key = key * 2862933555777941757 + 1 (mod 2^64)
    let nextHi = (mulHigh32(keyLo, LCG_LO) + Math.imul(keyHi, LCG_LO) + Math.imul(keyLo, LCG_HI)) >>> 0;
    const nextLo = (Math.imul(keyLo, LCG_LO) + 1) >>> 0;
    if (nextLo === 0) nextHi = (nextHi + 1) >>> 0;
    keyHi = nextHi;
    keyLo = nextLo;
    j = Math.floor((b + 1) * (2147483648 / ((keyHi >>> 1) + 1)));
  }
  return b;
}
