// An in-memory ContentStore (the interface in ../store.ts) for tests of the
// layers above the store. Test support: product code never imports this folder.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { NotFoundError, type BlobInfo, type ByteRange, type ContentStore } from '../store.ts';

export interface MemoryStore extends ContentStore {
  /** Adds content and returns its sha256 digest. */
  put(bytes: Buffer | string, mediaType?: string): string;
  tag(reference: string, digest: string): void;
  delete(digest: string): void;
}

export function createMemoryStore(): MemoryStore {
  const blobs = new Map<string, { bytes: Buffer; mediaType?: string }>();
  const tags = new Map<string, string>();
  return {
    put(bytes, mediaType) {
      const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
      const digest = `sha256:${createHash('sha256').update(buf).digest('hex')}`;
      blobs.set(digest, mediaType === undefined ? { bytes: buf } : { bytes: buf, mediaType });
      return digest;
    },
    tag(reference, digest) {
      tags.set(reference, digest);
    },
    delete(digest) {
      blobs.delete(digest);
    },
    async resolve(reference) {
      const digest = tags.get(reference);
      return digest !== undefined && blobs.has(digest) ? digest : undefined;
    },
    async stat(digest) {
      const blob = blobs.get(digest);
      if (blob === undefined) return undefined;
      const info: BlobInfo = { digest, size: blob.bytes.length };
      if (blob.mediaType !== undefined) info.mediaType = blob.mediaType;
      return info;
    },
    async read(digest, range?: ByteRange) {
      const blob = blobs.get(digest);
      if (blob === undefined) throw new NotFoundError(digest);
      const bytes = range === undefined ? blob.bytes : blob.bytes.subarray(range.start, range.end + 1);
      return Readable.from([bytes]);
    },
  };
}
