// Annotation names, the header annotation and the merge-patch diff. The format
// is documented in docs/SUMMARY-FORMAT.md; change FORMAT_VERSION with it.
import { SummaryError } from './errors.ts';
import { MAX_RANGE_PER_KEY, MIN_RANGE_PER_KEY } from './gcs.ts';

export const FORMAT_VERSION = 1;
export const HEADER_ANNOTATION = 'mirra.dev/summary';
export const SHARD_ANNOTATION_PREFIX = 'mirra.dev/shard-';
/** When the agent last changed its summary (RFC 3339); for inspection only. */
export const UPDATED_ANNOTATION = 'mirra.dev/updated';
export const DEFAULT_SHARDS = 8;
export const MAX_SHARDS = 256;
/** m = 104: false-positive rate <= 1/104 = 0.96%, about 8.2 bits per key before base64. */
export const DEFAULT_RANGE_PER_KEY = 104;
/** Soft budget for all mirra annotations of one pod. */
export const DEFAULT_BUDGET_BYTES = 128 * 1024;
/** The API server's limit for all annotations of an object. */
export const API_ANNOTATIONS_LIMIT_BYTES = 256 * 1024;
/** Never exceeded: the API limit minus room for the pod's other annotations. */
export const HARD_CAP_BYTES = API_ANNOTATIONS_LIMIT_BYTES - 16 * 1024;

/** `gcs`: one Golomb-Rice coded shard per annotation; `all`: saturated, claims every key. */
export type SummaryMode = 'gcs' | 'all';

export interface SummaryHeader {
  readonly version: number;
  readonly mode: SummaryMode;
  readonly shards: number;
  readonly keys: number;
  readonly generation: number;
  readonly rangePerKey: number;
}

export function shardAnnotation(index: number): string {
  return `${SHARD_ANNOTATION_PREFIX}${index}`;
}

/** Whether an annotation name belongs to the summary (header, last update or any shard, valid or not). */
export function isSummaryAnnotation(name: string): boolean {
  return name === HEADER_ANNOTATION || name === UPDATED_ANNOTATION || name.startsWith(SHARD_ANNOTATION_PREFIX);
}

export function formatHeader(header: SummaryHeader): string {
  const { version, mode, shards, keys, generation, rangePerKey } = header;
  return `v=${version};mode=${mode};s=${shards};n=${keys};g=${generation};m=${rangePerKey}`;
}

const HEADER_V1 = /^v=1;mode=(gcs|all);s=(0|[1-9]\d{0,3});n=(0|[1-9]\d{0,9});g=(0|[1-9]\d{0,15});m=(0|[1-9]\d{0,3})$/;

export function parseHeader(value: string): SummaryHeader {
  if (value.length > 200) throw new SummaryError('header', `header of ${value.length} characters is too long`);
  const version = /^v=(\d{1,6});/.exec(value);
  if (version === null) throw new SummaryError('header', `malformed header ${JSON.stringify(value)}`);
  if (Number(version[1]) !== FORMAT_VERSION) {
    throw new SummaryError('version', `summary format version ${version[1]} is not supported (this agent reads ${FORMAT_VERSION})`);
  }
  const match = HEADER_V1.exec(value);
  if (match === null) throw new SummaryError('header', `malformed header ${JSON.stringify(value)}`);
  const mode = match[1] === 'all' ? 'all' : 'gcs';
  const [shards, keys, generation, rangePerKey] = match.slice(2).map(Number) as [number, number, number, number];
  if (!Number.isSafeInteger(generation)) throw new SummaryError('header', `generation ${match[4]} is out of range`);
  if (mode === 'all' && (shards !== 0 || rangePerKey !== 0)) {
    throw new SummaryError('header', 'a saturated summary has no shards (s=0, m=0)');
  }
  if (mode === 'gcs' && (shards < 1 || shards > MAX_SHARDS)) {
    throw new SummaryError('limits', `shard count ${shards} outside [1, ${MAX_SHARDS}]`);
  }
  if (mode === 'gcs' && (rangePerKey < MIN_RANGE_PER_KEY || rangePerKey > MAX_RANGE_PER_KEY)) {
    throw new SummaryError('limits', `range per key ${rangePerKey} outside [${MIN_RANGE_PER_KEY}, ${MAX_RANGE_PER_KEY}]`);
  }
  return { version: FORMAT_VERSION, mode, shards, keys, generation, rangePerKey };
}

/** Bytes the API server counts for these annotations (names plus values, UTF-8). */
export function annotationBytes(annotations: Readonly<Record<string, string | null | undefined>>): number {
  let bytes = 0;
  for (const [name, value] of Object.entries(annotations)) {
    if (typeof value === 'string') bytes += Buffer.byteLength(name) + Buffer.byteLength(value);
  }
  return bytes;
}

/**
 * The annotations part of a JSON merge patch that turns the summary in `prev`
 * into `next`: changed or new annotations with their value, summary annotations
 * that are gone as null. Other annotations of `prev` are never touched. Empty
 * object: nothing to publish.
 */
export function diffAnnotations(
  prev: Readonly<Record<string, string | undefined>> | undefined,
  next: Readonly<Record<string, string>>,
): Record<string, string | null> {
  const patch: Record<string, string | null> = {};
  for (const [name, value] of Object.entries(next)) {
    if (prev?.[name] !== value) patch[name] = value;
  }
  for (const name of Object.keys(prev ?? {})) {
    if (isSummaryAnnotation(name) && !Object.hasOwn(next, name)) patch[name] = null;
  }
  return patch;
}
