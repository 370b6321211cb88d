// The bytes of a manifest (or index) of the node's images, read from its file
// in containerd's content directory and checked against its descriptor (size,
// digest) before anyone gets them, so that the registry's imagedOnly() view
// (store.ts) answers manifest requests without asking containerd over gRPC.
//
// Answers: the verified body; 'miss' when the file is missing (content gone,
// whatever told us so or not), has another size, or other bytes (a corrupted
// file is never served: containerd goes to the next host); 'unreadable' when
// the content directory itself cannot be read (not mounted into the agent's
// pod), so the caller asks containerd instead, as blobs do.
//
// Verified bodies are kept in memory (manifest-cache.ts, default 4 MiB: the
// manifests and indexes of a node's images are a few KiB each, so hundreds of
// images fit). A kept body is returned after a look that its file is still
// there, made at most LOOK_VALID_MS ago (a file removed without an event is a
// miss from then on), or longer ago when the caller says the file was seen
// that recently (a read right after the stat of the same request); the bytes
// need no second check (they matched the digest, which names them). Why keep
// them: DEFAULT_MANIFEST_CACHE_BYTES.
// Measured (bench:serve, 64 clients, alternated runs): a manifest GET's p99
// went from 37.5-40.2 ms, asking containerd for content Info twice per
// request, to 8.4-8.7 ms (by tag 40.1-42.4 -> 7.2-8.0 ms).
import { existsSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isNotFound } from '../fs/not-found.ts';
import { bodyMatchesDigest } from '../oci/digest.ts';
import { MAX_MANIFEST_BYTES } from '../oci/limits.ts';
import { blobPath } from './blobs.ts';
import { createManifestCache } from './manifest-cache.ts';
import type { Descriptor } from './messages.ts';

/**
 * Why keep bodies: without them every manifest GET reads its file and hashes
 * it in the store, then hashes it again in the route. Measured under
 * bench:serve's load (64 concurrent keep-alive clients, the agent bundled and
 * run with the chart's environment, client, agent and containerd on 2 cores;
 * alternated runs, 2026-12-06): p99 24.0-25.4 ms (p50 12.7) without, 6.8-8.8
 * ms (p50 2.6-3.6) with. 4 MiB holds the manifests and indexes of hundreds
 * of images; an entry costs its body and a few small objects.
 */
export const DEFAULT_MANIFEST_CACHE_BYTES = 4 * 1024 * 1024;

/**
 * A look that a kept body's file is still there counts for this long, so the
 * requests of one turn of the event loop under load (about 64 at bench:serve's
 * 64 clients) share one access() instead of one each; a file removed without
 * an event may be served for this long after. Measured with wrk (64
 * connections, the bundled agent alone, alternated runs, 2026-12-06): a look
 * per request 12.4-14.5k manifest GETs/s, p99 7.6-10.9 ms; a look per 5 ms
 * 15.5-16.8k/s, p99 4.6-7.8 ms (the look was 12% of the agent's CPU samples).
 */
const LOOK_VALID_MS = 5;

export type ManifestLoad = Buffer | 'miss' | 'unreadable';

export interface ManifestFilesOptions {
  /** containerd's content directory, e.g. /var/lib/containerd/io.containerd.content.v1.content */
  contentPath: string;
  /** Bytes of verified bodies kept in memory (0: none; default DEFAULT_MANIFEST_CACHE_BYTES). */
  cacheBytes?: number;
  /** Told once per digest when a file does not match its descriptor. */
  onMismatch?(descriptor: Descriptor, reason: string): void;
}

export interface LoadOptions {
  /** A kept body whose file was seen present at most this long ago is returned without looking again (default LOOK_VALID_MS). */
  seenWithinMs?: number;
}

export interface ManifestFiles {
  /** The descriptor's verified bytes, or why not (see the file's comment). */
  load(descriptor: Descriptor, options?: LoadOptions): Promise<ManifestLoad>;
  /** Drops the cached bodies (and mismatch notes) of digests `keep` refuses: the digests no longer served. */
  retain(keep: (digest: string) => boolean): void;
  /** Bytes of bodies kept now. */
  cachedBytes(): number;
}

/** Whether the content directory itself is there: a missing file in a missing directory is "not mounted", not "gone". */
async function directoryReadable(contentPath: string): Promise<boolean> {
  try {
    return (await stat(join(contentPath, 'blobs'))).isDirectory();
  } catch {
    return false;
  }
}

/** The file's bytes when it holds exactly `size` bytes; 'size' when it holds another number. */
async function readExactly(path: string, size: number): Promise<Buffer | 'size'> {
  const handle = await open(path, 'r');
  try {
    const info = await handle.stat();
    if (!info.isFile() || info.size !== size) return 'size';
    const body = Buffer.allocUnsafe(size);
    let offset = 0;
    while (offset < size) {
      const { bytesRead } = await handle.read(body, offset, size - offset, offset);
      if (bytesRead === 0) return 'size';
      offset += bytesRead;
    }
    return body;
  } finally {
    await handle.close();
  }
}

export function createManifestFiles(options: ManifestFilesOptions): ManifestFiles {
  const { contentPath } = options;
  const cache = createManifestCache(options.cacheBytes ?? DEFAULT_MANIFEST_CACHE_BYTES);
  const noted = new Set<string>();
  const mismatch = (descriptor: Descriptor, reason: string): 'miss' => {
    if (!noted.has(descriptor.digest)) {
      noted.add(descriptor.digest);
      options.onMismatch?.(descriptor, reason);
    }
    return 'miss';
  };

  /** A file not there: gone ('miss'), or the whole content directory is ('unreadable'). */
  const gone = async (): Promise<'miss' | 'unreadable'> => ((await directoryReadable(contentPath)) ? 'miss' : 'unreadable');
  const missing = async (err: unknown): Promise<'miss' | 'unreadable'> => (isNotFound(err) ? gone() : 'unreadable');

  const load = async (descriptor: Descriptor, loadOptions: LoadOptions = {}): Promise<ManifestLoad> => {
    const { digest, size } = descriptor;
    if (size > MAX_MANIFEST_BYTES) return 'miss';
    const cached = cache.get(digest);
    if (cached !== undefined) {
      const now = performance.now();
      if (now - cached.seenAtMs <= (loadOptions.seenWithinMs ?? LOOK_VALID_MS)) return cached.body;
      // Is the file still there? Synchronous on purpose: access() of a file
      // just read (its directory entry cached) takes 2-10 us on the event
      // loop and allocates nothing; through the thread pool a stat cost 15-25
      // us of CPU and, with 2 cores shared by 64 clients, the agent and
      // containerd, 37% of the agent's samples waited in it (bench:serve). No
      // look at its size: the bytes kept matched the digest.
      if (existsSync(cached.path)) {
        cached.seenAtMs = now;
        return cached.body;
      }
      cache.delete(digest);
      return gone();
    }
    const path = blobPath(contentPath, digest);
    let body: Buffer | 'size';
    try {
      body = await readExactly(path, size);
    } catch (err) {
      return missing(err);
    }
    if (body === 'size') return mismatch(descriptor, 'size');
    if (!bodyMatchesDigest(body, digest)) return mismatch(descriptor, 'digest');
    cache.put(digest, { body, path, seenAtMs: performance.now() });
    return body;
  };

  return {
    load,
    retain(keep) {
      cache.retain(keep);
      for (const digest of [...noted]) if (!keep(digest)) noted.delete(digest);
    },
    cachedBytes: () => cache.bytes(),
  };
}
