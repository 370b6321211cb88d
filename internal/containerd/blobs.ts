// Blob bytes, read straight from containerd's content directory
// (<contentPath>/blobs/<algorithm>/<hex>), with the gRPC Read stream as the
// fallback when the file cannot be opened (e.g. the directory is not mounted
// into the agent's pod). A digest is validated before it becomes a path, and
// the path is checked to stay inside the content directory.
import { open, stat } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { parseDigest } from '../oci/digest.ts';
import type { ByteRange } from '../oci/store.ts';
import type { ContentReader } from './client.ts';

/** Large reads: fewer syscalls and event-loop turns per blob. */
export const READ_CHUNK_BYTES = 1024 * 1024;

export interface BlobSource {
  client: ContentReader;
  /** containerd's content directory, e.g. /var/lib/containerd/io.containerd.content.v1.content */
  contentPath: string;
}

export class InvalidDigestError extends Error {
  override readonly name = 'InvalidDigestError';
  constructor(digest: string) {
    super(`invalid digest ${JSON.stringify(digest.slice(0, 100))}`);
  }
}

/** The file of a blob in the content directory. Throws InvalidDigestError for anything but a well-formed digest. */
export function blobPath(contentPath: string, digest: string): string {
  const parsed = parseDigest(digest);
  if (parsed === undefined) throw new InvalidDigestError(digest);
  const base = resolve(contentPath, 'blobs');
  const path = join(base, parsed.algorithm, parsed.hex);
  if (!path.startsWith(base + sep)) throw new InvalidDigestError(digest);
  return path;
}

/** The size of a committed blob's file in the content directory (without asking containerd), or undefined when there is none. */
export async function committedSize(contentPath: string, digest: string): Promise<number | undefined> {
  try {
    const info = await stat(blobPath(contentPath, digest));
    return info.isFile() ? info.size : undefined;
  } catch {
    return undefined;
  }
}

/** Throws RangeError for a range that is not two safe integers, start <= end, from 0 (undefined: the whole blob). */
export function assertByteRange(range: ByteRange | undefined): void {
  if (range === undefined) return;
  if (!(Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end) && range.start >= 0 && range.end >= range.start)) {
    throw new RangeError(`invalid byte range ${range.start}-${range.end}`);
  }
}

/** The range clamped to a blob of `sizeBytes`; undefined when it selects nothing. */
export function clampRange(range: ByteRange | undefined, sizeBytes: number): ByteRange | undefined {
  const start = range?.start ?? 0;
  const end = Math.min(range?.end ?? sizeBytes - 1, sizeBytes - 1);
  return start > end ? undefined : { start, end };
}

function emptyStream(): Readable {
  return Readable.from([]);
}

/**
 * A stream of the blob's bytes (all, or the inclusive range), whose size the
 * caller knows (from content Info). The file is opened before this resolves,
 * so a missing file falls back to gRPC instead of failing mid-stream.
 */
export async function openBlob(source: BlobSource, digest: string, sizeBytes: number, range?: ByteRange): Promise<Readable> {
  const path = blobPath(source.contentPath, digest);
  const bytes = clampRange(range, sizeBytes);
  if (bytes === undefined) return emptyStream();
  let handle;
  try {
    handle = await open(path, 'r');
  } catch {
    return source.client.readContent(digest, bytes.start, bytes.end - bytes.start + 1);
  }
  return handle.createReadStream({ start: bytes.start, end: bytes.end, highWaterMark: READ_CHUNK_BYTES, autoClose: true });
}

/** Reads a whole small blob (a manifest or index) into memory; undefined if larger than maxBytes. */
export async function readBlobBytes(source: BlobSource, digest: string, sizeBytes: number, maxBytes: number): Promise<Buffer | undefined> {
  if (sizeBytes > maxBytes) return undefined;
  const stream = await openBlob(source, digest, sizeBytes);
  return collect(stream, maxBytes);
}

/** Collects a byte stream, destroying it (and returning undefined) once it exceeds maxBytes. */
export async function collect(stream: Readable, maxBytes: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    total += buf.length;
    if (total > maxBytes) {
      stream.destroy();
      return undefined;
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}
