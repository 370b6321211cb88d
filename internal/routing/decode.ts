// The summary decoder for another pod's annotations: untrusted input. Every
// problem is a SummaryError; allocations are bounded by the input's length,
// which the API server caps at 256 KiB per object.
import { API_ANNOTATIONS_LIMIT_BYTES, HEADER_ANNOTATION, parseHeader, shardAnnotation, type SummaryHeader } from './annotations.ts';
import { SummaryError } from './errors.ts';
import { decodeShard, MAX_SHARD_BYTES, type ShardCode } from './gcs.ts';
import { jumpHash, type KeyHash } from './hash.ts';
import { buildShardFilter, filterHas, type ShardFilter } from './shard-filter.ts';

export interface PeerSummary {
  readonly header: SummaryHeader;
  /** One filter per shard; empty when saturated. */
  readonly filters: readonly ShardFilter[];
  /** Change-detection tag of each shard annotation value (see DecodeOptions.tag). */
  readonly shardTags: readonly string[];
  /** Shards decoded by the call that produced this summary (the rest were reused). */
  readonly decodedShards: number;
  /** Whether the peer may have the key: never false for a key it published. */
  has(hash: KeyHash): boolean;
}

/** A summary's shards in any in-memory form F (decodeShards). */
export interface DecodedShards<F> {
  readonly header: SummaryHeader;
  readonly filters: readonly F[];
  readonly shardTags: readonly string[];
  readonly decodedShards: number;
}

export interface DecodeOptions<F = ShardFilter> {
  /** The peer's previous summary: shards whose tag is unchanged are reused (same filter object), not decoded. */
  previous?: Pick<DecodedShards<F>, 'header' | 'shardTags' | 'filters'> | undefined;
  /** Maps a shard value to a short tag (e.g. its xxh64); default: the value itself. */
  tag?: (value: string) => string;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const MAX_SHARD_BASE64 = 4 * Math.ceil(MAX_SHARD_BYTES / 3);

/** Strict standard base64 (padding required, canonical trailing bits). */
export function decodeBase64(value: string, what: string): Uint8Array {
  if (value.length > MAX_SHARD_BASE64) throw new SummaryError('limits', `${what} is ${value.length} characters long`);
  if (!BASE64.test(value)) throw new SummaryError('base64', `${what} is not valid base64`);
  const bytes = Buffer.from(value, 'base64');
  if (bytes.toString('base64') !== value) throw new SummaryError('base64', `${what} is not canonical base64`);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Decodes and validates one shard annotation value (its m must be the header's). */
export function decodeShardCode(value: string, rangePerKey: number, what: string): ShardCode {
  const code = decodeShard(decodeBase64(value, what));
  if (code.m !== rangePerKey) throw new SummaryError('inconsistent', `${what} has range per key ${code.m}, the header says ${rangePerKey}`);
  return code;
}

/**
 * decodeSummary with the shards built by `build` (the peer index keeps them in
 * its own form). undefined when the pod carries no summary (yet); a
 * SummaryError when it is unusable.
 */
export function decodeShards<F extends { readonly keys: number }>(
  annotations: Readonly<Record<string, string | undefined>> | undefined,
  build: (code: ShardCode) => F,
  options: DecodeOptions<F> = {},
): DecodedShards<F> | undefined {
  const headerValue = annotations?.[HEADER_ANNOTATION];
  if (annotations === undefined || headerValue === undefined) return undefined;
  const header = parseHeader(headerValue);
  if (header.mode === 'all') return { header, filters: [], shardTags: [], decodedShards: 0 };
  const tag = options.tag ?? ((value: string) => value);
  const previous = options.previous;
  const reusable =
    previous !== undefined && previous.header.mode === 'gcs' && previous.header.shards === header.shards && previous.header.rangePerKey === header.rangePerKey;
  let totalBytes = HEADER_ANNOTATION.length + headerValue.length;
  const filters: F[] = [];
  const shardTags: string[] = [];
  let decodedShards = 0;
  let keys = 0;
  for (let i = 0; i < header.shards; i++) {
    const name = shardAnnotation(i);
    const value = annotations[name];
    if (value === undefined) throw new SummaryError('inconsistent', `missing annotation ${name} (header says ${header.shards} shards)`);
    totalBytes += name.length + value.length;
    if (totalBytes > API_ANNOTATIONS_LIMIT_BYTES) throw new SummaryError('limits', `summary exceeds ${API_ANNOTATIONS_LIMIT_BYTES} bytes`);
    const shardTag = tag(value);
    const old = reusable ? previous.filters[i] : undefined;
    let filter: F;
    if (old !== undefined && previous?.shardTags[i] === shardTag) {
      filter = old;
    } else {
      filter = build(decodeShardCode(value, header.rangePerKey, name));
      decodedShards++;
    }
    keys += filter.keys;
    filters.push(filter);
    shardTags.push(shardTag);
  }
  if (keys !== header.keys) throw new SummaryError('inconsistent', `shards hold ${keys} keys, the header says ${header.keys}`);
  return { header, filters, shardTags, decodedShards };
}

const buildFilter = (code: ShardCode): ShardFilter => buildShardFilter(code.values, code.values.length * code.m, code.m);

/** undefined when the pod carries no summary (yet); a SummaryError when it is unusable. */
export function decodeSummary(annotations: Readonly<Record<string, string | undefined>> | undefined, options: DecodeOptions = {}): PeerSummary | undefined {
  const decoded = decodeShards(annotations, buildFilter, options);
  if (decoded === undefined) return undefined;
  const { header, filters } = decoded;
  if (header.mode === 'all') return { ...decoded, has: () => true };
  const shards = header.shards;
  return { ...decoded, has: (hash: KeyHash) => filterHas(filters[jumpHash(hash.hi, hash.lo, shards)]!, hash.x) };
}
