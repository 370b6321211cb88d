// The node's content, as the registry sees it. One implementation reads the
// real containerd (internal/containerd), one lives in memory for tests
// (storetest/memory-store.ts); both pass the same conformance suite
// (storetest/conformance.ts).
import type { Readable } from 'node:stream';

export interface BlobInfo {
  digest: string;
  /** Size in bytes. */
  size: number;
  /** Media type from the descriptor that referenced this content, when known. */
  mediaType?: string;
}

/** An inclusive byte range, as in an HTTP Range header. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface ContentStore {
  /** The digest an image reference (e.g. `docker.io/library/nginx:1.27`) points to, or undefined. */
  resolve(reference: string): Promise<string | undefined>;
  /** Size and media type of content present in the store, or undefined when absent. */
  stat(digest: string): Promise<BlobInfo | undefined>;
  /** The bytes of present content (all, or the inclusive range). Throws NotFoundError when absent. */
  read(digest: string, range?: ByteRange): Promise<Readable>;
}

export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
  constructor(what: string) {
    super(`${what} not found`);
  }
}
