// What a peer may stream from this node during a cold rollout: a blob this
// node's containerd is fetching from the upstream right now (local-fetches.ts),
// read from containerd's ingest as it grows (internal/containerd/
// ingest-follow.ts), or, once committed and until it shows in an image, from
// the content store. A ContentSource chained after the local store for peer
// requests only: containerd's own requests never get their own ingest back.
//
// The size announced is the ingest's expected total (containerd opens the
// ingest with the descriptor's size before it asks any host); an ingest
// without one is not served. The peer that streams it checks the digest, as
// for every peer blob.
import type { ContentRequest, ContentSource, LocatedContent } from '../content/source.ts';
import { createReadStream } from 'node:fs';
import { blobPath, committedSize, READ_CHUNK_BYTES } from '../containerd/blobs.ts';
import { findIngestData, followIngest } from '../containerd/ingest-follow.ts';
import { isNotFound } from '../fs/not-found.ts';
import type { ByteRange } from '../oci/store.ts';
import type { LocalFetches } from './local-fetches.ts';
import type { Readable } from 'node:stream';

/** The access log's `source` of a blob served from an ingest in progress. */
export const INGEST_SOURCE = 'ingest';

export interface InProgressSourceOptions {
  fetches: LocalFetches;
  /** containerd's content directory (its ingest/ and blobs/). */
  contentPath: string;
  /** containerd's namespace of the node's images (the ingests' backing refs start with it). */
  namespace: string;
  /** An ingest that does not grow for this long ends the stream short. */
  stallMs: number;
  /** Bytes sent from ingests, for metrics. */
  onIngestBytes?(bytes: number): void;
}

/**
 * A fetch that completed: the committed blob's file, read directly. Not
 * through containerd: right after the commit renamed the ingest's data into
 * blobs/, containerd's metadata may not name the blob yet (measured: three
 * followers asking in that window got 404 and fetched it again). The digest
 * came from this node's own pull and the follower checks it.
 */
async function fromFile(options: InProgressSourceOptions, digest: string): Promise<LocatedContent | undefined> {
  const size = await committedSize(options.contentPath, digest);
  if (size === undefined) return undefined;
  return { info: { digest, size }, source: INGEST_SOURCE, read: (range?: ByteRange) => readFile(options, digest, size, range) };
}

function readFile(options: InProgressSourceOptions, digest: string, size: number, range?: ByteRange): Promise<Readable> {
  const end = Math.min(range?.end ?? size - 1, size - 1);
  return Promise.resolve(createReadStream(blobPath(options.contentPath, digest), { start: range?.start ?? 0, end, highWaterMark: READ_CHUNK_BYTES }));
}

async function readIngest(options: InProgressSourceOptions, digest: string, located: { ref: string; total: number }, range?: ByteRange): Promise<Readable> {
  const path = await findIngestData(options.contentPath, options.namespace, located.ref);
  // Committed (renamed into blobs/) or dropped since the lookup.
  if (path === undefined) return readFile(options, digest, located.total, range);
  try {
    return await followIngest({
      path,
      start: range?.start ?? 0,
      end: Math.min(range?.end ?? located.total - 1, located.total - 1),
      stallMs: options.stallMs,
      // A fetch still judged alive (its download waits for one of containerd's slots) is waited for.
      live: () => options.fetches.has(digest),
      onBytes: options.onIngestBytes,
    });
  } catch (err) {
    // Committed or dropped between finding the file and opening it.
    if (isNotFound(err)) return readFile(options, digest, located.total, range);
    throw err;
  }
}

export function createInProgressSource(options: InProgressSourceOptions): ContentSource {
  return {
    resolveTag: () => Promise.resolve(undefined),
    async locate(request: ContentRequest, digest: string) {
      if (request.kind === 'manifest' || !options.fetches.has(digest)) return undefined;
      // containerd unreachable: the ingest cannot be found, only a committed blob can be served.
      const ingest = await options.fetches.ingestOf(digest).catch(() => undefined);
      if (ingest === undefined) return fromFile(options, digest);
      if (ingest.total <= 0) return undefined;
      return {
        info: { digest, size: ingest.total },
        source: INGEST_SOURCE,
        // The download may still wait for one of containerd's slots: the follower gets its headers now, the bytes when they come.
        headersFirst: true,
        read: (range?: ByteRange) => readIngest(options, digest, ingest, range),
      };
    },
  };
}
