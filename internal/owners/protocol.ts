// The wire of the peer-to-peer index (docs/DESIGN.md, "Discovery"): what a
// holder sends a shard's owners and what an owner answers, in one place below
// both ends (client.ts sends, internal/registry/routes-index.ts answers).
//
//   POST /mirra/v1/index?from=<self>&sum=<sha256 of the body, base64url>
//        {"entries":[{"shard":3,"op":"full","keys":"<b64>","digest":"2-…"},
//                    {"shard":9,"op":"delta","added":"<b64>","removed":"<b64>","digest":"…"},
//                    {"shard":12,"op":"check","digest":"…"}]}
//        -> {"instance":"<owner's start id>","resend":[9,12]}
//   GET  /mirra/v1/holders/<key, 14 hex digits>?from=<self>&zone=<zone>
//        -> {"instance":"…","holders":["pod-a","pod-b"],"warming":false}
//
// Keys travel as key numbers (53 bits of their xxh64, internal/routing/
// owner-store.ts), 7 bytes each, big-endian, base64: 9.3 bytes per key on
// the wire. `digest` is the owner store's digest of the holder's whole set in
// that shard after the entry: the owner answers `resend` for every shard
// whose digest it does not reach, and the holder sends those in full. `sum`
// binds the body to the request's signature (the signature covers the path
// and query, so with peer auth on a changed body is refused).
import { KUBERNETES_NAME } from '../auth/peer-request.ts';
import { isRecord } from '../json/narrow.ts';

export const INDEX_PATH = '/mirra/v1/index';
export const HOLDERS_PATH = '/mirra/v1/holders/';
export const FROM_PARAM = 'from';
export const SUM_PARAM = 'sum';
export const ZONE_PARAM = 'zone';
/** The media type of a push body. */
export const INDEX_CONTENT_TYPE = 'application/vnd.mirra.index.v1+json';

/** Shards of the key space. Every agent must use the same: it is part of the protocol. 256: a holder's keys go to min(N, 512) owners (docs/DESIGN.md, cost model). */
export const OWNER_SHARDS = 256;
/** Owners per shard: a lookup has a second owner to ask when the first is slow, gone or still filling. */
export const OWNER_REPLICAS = 2;
/** Holders an owner names per lookup at most (the asker tries 5). */
export const MAX_HOLDERS_ANSWERED = 16;

/** Bytes of one key on the wire. */
export const KEY_BYTES = 7;
/** A push body is at most this big (the route refuses more; the holder splits before). */
export const MAX_PUSH_BYTES = 8 * 1024 * 1024;
/** A holder puts at most this many keys in one push (~0.9 MB of base64). */
export const MAX_KEYS_PER_PUSH = 100_000;
/** Bytes of an owner's answer at most (16 pod names and the instance). */
export const MAX_ANSWER_BYTES = 64 * 1024;

export type IndexEntry =
  | { readonly shard: number; readonly op: 'full'; readonly keys: readonly number[]; readonly digest: string }
  | { readonly shard: number; readonly op: 'delta'; readonly added: readonly number[]; readonly removed: readonly number[]; readonly digest: string }
  | { readonly shard: number; readonly op: 'check'; readonly digest: string };

export interface PushAnswer {
  /** The owner's start id: a new one means it lost what it had (the holder sends everything again). */
  readonly instance: string;
  /** Shards to send in full. */
  readonly resend: readonly number[];
}

export interface HoldersAnswer {
  readonly instance: string;
  readonly holders: readonly string[];
  /** The owner took the shard over only lately: holders may still be filling it in (ask the second owner too). */
  readonly warming: boolean;
}

/** One lookup of a key's holders at one owner. */
export interface HoldersQuery {
  readonly key: number;
  /** The asker's zone: holders in it come first. */
  readonly zone: string | undefined;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

/** The wire's error: the message names what is wrong. */
export class IndexProtocolError extends Error {
  override readonly name = 'IndexProtocolError';
}

const DIGEST = /^(0-0|[1-9]\d{0,9}-[0-9a-f]{16})$/;
const INSTANCE = /^[A-Za-z0-9_-]{1,64}$/;
const KEY_HEX = /^[0-9a-f]{14}$/;

/** Key numbers as base64 of 7 big-endian bytes each; `count` is how many `keys` yields. */
export function packKeys(keys: Iterable<number>, count: number): string {
  const bytes = Buffer.allocUnsafe(count * KEY_BYTES);
  let at = 0;
  for (const key of keys) {
    if (at >= bytes.length) throw new RangeError(`packKeys: more keys than the ${count} announced`);
    writeKey(bytes, at, key);
    at += KEY_BYTES;
  }
  if (at !== bytes.length) throw new RangeError(`packKeys: ${at / KEY_BYTES} keys, ${count} announced`);
  return bytes.toString('base64');
}

/** A key number (< 2^53) as 7 big-endian bytes. */
function writeKey(bytes: Buffer, at: number, key: number): void {
  const hi = Math.floor(key / 4294967296);
  bytes.writeUIntBE(hi, at, 3);
  bytes.writeUInt32BE(key % 4294967296, at + 3);
}

function unpackKeys(value: unknown, what: string): number[] {
  if (typeof value !== 'string') throw new IndexProtocolError(`${what}: not a base64 string`);
  const bytes = Buffer.from(value, 'base64');
  if (bytes.length % KEY_BYTES !== 0 || bytes.toString('base64') !== value) throw new IndexProtocolError(`${what}: not whole ${KEY_BYTES}-byte keys in base64`);
  const keys = new Array<number>(bytes.length / KEY_BYTES);
  for (let i = 0, at = 0; at < bytes.length; i++, at += KEY_BYTES) {
    const hi = bytes.readUIntBE(at, 3);
    if (hi >= 2 ** 21) throw new IndexProtocolError(`${what}: key ${i} has more than 53 bits`);
    keys[i] = hi * 4294967296 + bytes.readUInt32BE(at + 3);
  }
  return keys;
}

/** A key number as it is written in a holders path. */
export function keyHex(key: number): string {
  return key.toString(16).padStart(14, '0');
}

export function parseKeyHex(value: string): number {
  if (!KEY_HEX.test(value)) throw new IndexProtocolError(`key ${JSON.stringify(value.slice(0, 40))} is not 14 hex digits`);
  const key = Number.parseInt(value, 16);
  if (!Number.isSafeInteger(key)) throw new IndexProtocolError('key has more than 53 bits');
  return key;
}

export function encodeEntries(entries: readonly IndexEntry[]): Buffer {
  const wire = entries.map((entry) => {
    switch (entry.op) {
      case 'full':
        return { shard: entry.shard, op: entry.op, keys: packKeys(entry.keys, entry.keys.length), digest: entry.digest };
      case 'delta':
        return {
          shard: entry.shard,
          op: entry.op,
          added: packKeys(entry.added, entry.added.length),
          removed: packKeys(entry.removed, entry.removed.length),
          digest: entry.digest,
        };
      case 'check':
        return entry;
    }
  });
  return Buffer.from(JSON.stringify({ entries: wire }));
}

function parseEntry(value: unknown, i: number): IndexEntry {
  const what = `entries[${i}]`;
  if (!isRecord(value)) throw new IndexProtocolError(`${what}: not an object`);
  const { shard, op, digest } = value;
  if (typeof shard !== 'number' || !Number.isInteger(shard) || shard < 0 || shard >= OWNER_SHARDS) {
    throw new IndexProtocolError(`${what}.shard: not an integer in [0, ${OWNER_SHARDS})`);
  }
  if (typeof digest !== 'string' || !DIGEST.test(digest)) throw new IndexProtocolError(`${what}.digest: not <count>-<16 hex digits>`);
  if (op === 'full') return { shard, op, keys: unpackKeys(value.keys, `${what}.keys`), digest };
  if (op === 'delta') return { shard, op, added: unpackKeys(value.added, `${what}.added`), removed: unpackKeys(value.removed, `${what}.removed`), digest };
  if (op === 'check') return { shard, op, digest };
  throw new IndexProtocolError(`${what}.op: not full, delta or check`);
}

/** The entries of a push body (untrusted: every field checked, one line naming the first bad one). */
export function decodeEntries(body: Buffer): IndexEntry[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new IndexProtocolError('body is not JSON');
  }
  if (!isRecord(parsed) || !Array.isArray(parsed.entries)) throw new IndexProtocolError('body has no entries array');
  return parsed.entries.map((entry: unknown, i) => parseEntry(entry, i));
}

function parseInstance(value: unknown): string {
  if (typeof value !== 'string' || !INSTANCE.test(value)) throw new IndexProtocolError('answer has no valid instance');
  return value;
}

export function parsePushAnswer(value: unknown): PushAnswer {
  if (!isRecord(value)) throw new IndexProtocolError('answer is not an object');
  const { resend } = value;
  if (!Array.isArray(resend) || !resend.every((s) => typeof s === 'number' && Number.isInteger(s) && s >= 0 && s < OWNER_SHARDS)) {
    throw new IndexProtocolError('answer has no valid resend list');
  }
  return { instance: parseInstance(value.instance), resend: resend as number[] };
}

export function parseHoldersAnswer(value: unknown): HoldersAnswer {
  if (!isRecord(value)) throw new IndexProtocolError('answer is not an object');
  const { holders, warming } = value;
  if (!Array.isArray(holders) || holders.length > MAX_HOLDERS_ANSWERED || !holders.every((h) => typeof h === 'string' && KUBERNETES_NAME.test(h))) {
    throw new IndexProtocolError('answer has no valid holders list');
  }
  if (typeof warming !== 'boolean') throw new IndexProtocolError('answer has no warming flag');
  return { instance: parseInstance(value.instance), holders: holders as string[], warming };
}
