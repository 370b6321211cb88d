// Typed views of the messages containerd sends, checked field by field: the
// decoded objects are treated as `unknown` until validated here.
import { parseDigest } from '../oci/digest.ts';

/** An OCI descriptor (digest validated). */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface ImageRecord {
  name: string;
  target: Descriptor;
  labels: Record<string, string>;
  /** Milliseconds since the epoch, when containerd reported it. */
  updatedAtMs?: number;
}

export interface ContentInfo {
  digest: string;
  size: number;
  labels: Record<string, string>;
}

/** An ingest in progress: containerd writing content not yet committed. */
export interface IngestStatus {
  ref: string;
  /** Bytes written so far. */
  offset: number;
  /** Expected size in bytes (0: unknown). */
  total: number;
  /** Expected digest ('' when the writer did not say). */
  expected: string;
}

export interface Envelope {
  namespace: string;
  topic: string;
  timestampMs?: number;
  /** The payload: type_url and encoded message, when present. */
  event?: { typeUrl: string; value: Buffer };
}

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ProtocolError(`${what}: not an object`);
  return value as Record<string, unknown>;
}

function str(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new ProtocolError(`${what}: not a string`);
  return value;
}

function size(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new ProtocolError(`${what}: bad size`);
  return value;
}

function labels(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) if (typeof v === 'string') out[k] = v;
  return out;
}

function timestampMs(value: unknown): number | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { seconds, nanos } = value as Record<string, unknown>;
  if (typeof seconds !== 'number' || typeof nanos !== 'number') return undefined;
  return seconds * 1000 + Math.floor(nanos / 1e6);
}

export function digestField(value: unknown, what: string): string {
  const digest = str(value, what);
  if (parseDigest(digest) === undefined) throw new ProtocolError(`${what}: bad digest ${JSON.stringify(digest.slice(0, 100))}`);
  return digest;
}

export function parseDescriptor(value: unknown, what = 'descriptor'): Descriptor {
  const r = record(value, what);
  return {
    mediaType: str(r.mediaType, `${what}.mediaType`),
    digest: digestField(r.digest, `${what}.digest`),
    size: size(r.size, `${what}.size`),
  };
}

export function parseImage(value: unknown): ImageRecord {
  const r = record(value, 'image');
  const name = str(r.name, 'image.name');
  const image: ImageRecord = { name, target: parseDescriptor(r.target, `image ${name} target`), labels: labels(r.labels) };
  const updated = timestampMs(r.updatedAt);
  if (updated !== undefined) image.updatedAtMs = updated;
  return image;
}

export function parseContentInfo(value: unknown): ContentInfo {
  const r = record(value, 'info');
  return { digest: digestField(r.digest, 'info.digest'), size: size(r.size, 'info.size'), labels: labels(r.labels) };
}

export function parseIngestStatus(value: unknown): IngestStatus {
  const r = record(value, 'status');
  const expected = str(r.expected, 'status.expected');
  return {
    ref: str(r.ref, 'status.ref'),
    offset: size(r.offset, 'status.offset'),
    total: size(r.total, 'status.total'),
    expected: expected === '' ? '' : digestField(expected, 'status.expected'),
  };
}

export function parseEnvelope(value: unknown): Envelope {
  const r = record(value, 'envelope');
  const envelope: Envelope = { namespace: str(r.namespace, 'envelope.namespace'), topic: str(r.topic, 'envelope.topic') };
  const ts = timestampMs(r.timestamp);
  if (ts !== undefined) envelope.timestampMs = ts;
  if (typeof r.event === 'object' && r.event !== null) {
    // google.protobuf.Any keeps its field names as declared (type_url), as protobufjs did (proto-codecs.ts).
    const any = r.event as Record<string, unknown>;
    const typeUrl = any.type_url ?? any.typeUrl;
    if (typeof typeUrl === 'string' && Buffer.isBuffer(any.value)) envelope.event = { typeUrl, value: any.value };
  }
  return envelope;
}

/** A field of a decoded message (object), as unknown. */
export function field(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[name] : undefined;
}

export function arrayOf(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw new ProtocolError(`${what}: not a list`);
  return value;
}
