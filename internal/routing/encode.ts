// The summary encoder: keys -> xxh64 -> jump hash into S shards -> one
// Golomb-Rice coded set per shard -> base64 annotations plus a header.
// Deterministic: the same keys of a shard always give the same annotation value.
import {
  DEFAULT_BUDGET_BYTES,
  DEFAULT_RANGE_PER_KEY,
  DEFAULT_SHARDS,
  FORMAT_VERSION,
  HARD_CAP_BYTES,
  HEADER_ANNOTATION,
  MAX_SHARDS,
  formatHeader,
  shardAnnotation,
  type SummaryHeader,
} from './annotations.ts';
import { bestRice, encodeShard, MAX_RANGE_PER_KEY, MIN_RANGE_PER_KEY, type ShardCode } from './gcs.ts';
import { jumpHash, reduceRange, type Hasher, type KeyHash } from './hash.ts';

export interface DegradeEvent {
  readonly keys: number;
  /** Range per key actually used; 0 when saturated. */
  readonly rangePerKey: number;
  readonly requestedRangePerKey: number;
  readonly bytes: number;
  readonly budgetBytes: number;
  readonly saturated: boolean;
}

export interface EncodeOptions {
  shards?: number;
  generation?: number;
  /** Budget for all summary annotations (names + values); clamped to HARD_CAP_BYTES. */
  budgetBytes?: number;
  /** m: false-positive rate <= 1/m. */
  rangePerKey?: number;
  /** Called when the summary had to degrade to fit; the caller logs and counts it. */
  onDegrade?: (event: DegradeEvent) => void;
}

export interface EncodeStats {
  readonly keys: number;
  readonly bytes: number;
  readonly bytesPerKey: number;
  readonly rangePerKey: number;
  /** log2(m): the equivalent fingerprint size. */
  readonly fingerprintBits: number;
  /** Upper bound of the false-positive rate (1/m; 1 when saturated). */
  readonly fpRate: number;
  readonly degraded: boolean;
  readonly saturated: boolean;
}

export interface EncodedSummary {
  readonly annotations: Record<string, string>;
  readonly stats: EncodeStats;
}

function base64Length(bytes: number): number {
  return 4 * Math.ceil(bytes / 3);
}

/** An integer option's default and inclusive bounds. */
interface IntegerBounds {
  readonly fallback: number;
  readonly min: number;
  readonly max: number;
}

function integerOption(name: string, value: number | undefined, bounds: IntegerBounds): number {
  const { fallback, min, max } = bounds;
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${v}`);
  return v;
}

/** Splits the filter hashes by shard (jump consistent hash of the full 64 bits). */
function partition(hashes: readonly KeyHash[], shards: number): Uint32Array[] {
  const shardOf = new Uint16Array(hashes.length);
  const counts = new Uint32Array(shards);
  for (let i = 0; i < hashes.length; i++) {
    const h = hashes[i]!;
    const s = jumpHash(h.hi, h.lo, shards);
    shardOf[i] = s;
    counts[s]!++;
  }
  const parts = Array.from(counts, (n) => new Uint32Array(n));
  const fill = new Uint32Array(shards);
  for (let i = 0; i < hashes.length; i++) {
    const s = shardOf[i]!;
    parts[s]![fill[s]!++] = hashes[i]!.x;
  }
  return parts;
}

/** The sorted values of one shard at range per key m. */
export function shardValues(xs: Uint32Array, m: number): Uint32Array {
  const range = xs.length * m;
  const values = new Uint32Array(xs.length);
  for (let i = 0; i < xs.length; i++) values[i] = reduceRange(xs[i]!, range);
  return values.sort();
}

interface Sized {
  codes: ShardCode[];
  bytes: number;
}

function sizeAt(parts: Uint32Array[], m: number, headerBytes: number): Sized {
  let bytes = headerBytes;
  const codes = parts.map((xs, i) => {
    const values = shardValues(xs, m);
    const rice = bestRice(values, m);
    bytes += shardAnnotation(i).length + base64Length(rice.bytes);
    return { m, k: rice.k, values };
  });
  return { codes, bytes };
}

/** Encodes already-hashed keys (one KeyHash per distinct key). */
export function encodeSummaryHashes(hashes: readonly KeyHash[], options: EncodeOptions = {}): EncodedSummary {
  const shards = integerOption('shards', options.shards, { fallback: DEFAULT_SHARDS, min: 1, max: MAX_SHARDS });
  const requested = integerOption('rangePerKey', options.rangePerKey, { fallback: DEFAULT_RANGE_PER_KEY, min: MIN_RANGE_PER_KEY, max: MAX_RANGE_PER_KEY });
  const generation = integerOption('generation', options.generation, { fallback: 0, min: 0, max: Number.MAX_SAFE_INTEGER });
  const budgetBytes = Math.min(
    integerOption('budgetBytes', options.budgetBytes, { fallback: DEFAULT_BUDGET_BYTES, min: 0, max: Number.MAX_SAFE_INTEGER }),
    HARD_CAP_BYTES,
  );
  const keys = hashes.length;
  const parts = partition(hashes, shards);
  const header = (mode: SummaryHeader['mode'], m: number): string =>
    formatHeader({ version: FORMAT_VERSION, mode, shards: mode === 'all' ? 0 : shards, keys, generation, rangePerKey: m });

  let tried = 0;
  for (let m = requested; m > 0; m = m === MIN_RANGE_PER_KEY ? 0 : Math.max(MIN_RANGE_PER_KEY, Math.floor(m / 2))) {
    const headerValue = header('gcs', m);
    const sized = sizeAt(parts, m, HEADER_ANNOTATION.length + headerValue.length);
    tried = sized.bytes;
    if (sized.bytes > budgetBytes) continue;
    const annotations: Record<string, string> = { [HEADER_ANNOTATION]: headerValue };
    sized.codes.forEach((code, i) => {
      annotations[shardAnnotation(i)] = Buffer.from(encodeShard(code)).toString('base64');
    });
    const degraded = m !== requested;
    if (degraded) options.onDegrade?.({ keys, rangePerKey: m, requestedRangePerKey: requested, bytes: sized.bytes, budgetBytes, saturated: false });
    return { annotations, stats: stats(keys, sized.bytes, m, degraded) };
  }
  // Even m = 2 does not fit: claim everything (no false negatives, see docs/SUMMARY-FORMAT.md).
  const annotations = { [HEADER_ANNOTATION]: header('all', 0) };
  const bytes = HEADER_ANNOTATION.length + annotations[HEADER_ANNOTATION].length;
  options.onDegrade?.({ keys, rangePerKey: 0, requestedRangePerKey: requested, bytes: tried, budgetBytes, saturated: true });
  return { annotations, stats: stats(keys, bytes, 0, true) };
}

function stats(keys: number, bytes: number, m: number, degraded: boolean): EncodeStats {
  return {
    keys,
    bytes,
    bytesPerKey: keys === 0 ? 0 : bytes / keys,
    rangePerKey: m,
    fingerprintBits: m === 0 ? 0 : Math.log2(m),
    fpRate: m === 0 ? 1 : 1 / m,
    degraded,
    saturated: m === 0,
  };
}

/** Hashes the distinct keys with xxh64 and encodes them. */
export function encodeSummary(keys: Iterable<string>, options: EncodeOptions & { hasher: Hasher }): EncodedSummary {
  const hashes: KeyHash[] = [];
  for (const key of new Set(keys)) hashes.push(options.hasher.hash(key));
  return encodeSummaryHashes(hashes, options);
}
