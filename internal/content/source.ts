// Where the registry handlers get content from. The handlers never talk to a
// ContentStore directly: they ask a ContentSource, and a source can be the local
// store (storeSource) or a chain of the local store and the peers
// (chainSources([storeSource(store), peerSource(...)])). Policy (the ns filter,
// tag resolution on/off) stays in the handlers; sources only find content.
// A folder of its own, between internal/oci and its users: the registry
// (internal/registry) asks sources, the peer source (internal/peer) is one,
// and neither depends on the other for it.
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { imageReference } from '../oci/reference.ts';
import type { BlobInfo, ByteRange, ContentStore } from '../oci/store.ts';

/** What a request is about, beyond the digest: enough for a peer to be asked too. */
export interface ContentRequest {
  /** Registry host the content belongs to (the `ns` query parameter). */
  registry: string;
  /** Repository name, e.g. `library/nginx`. */
  name: string;
  /**
   * Hints for sources that fetch (peers): what the content is wanted as (a
   * manifest is read whole, a blob streamed; default blob) and whether the
   * bytes will be read at all (HEAD: only `info`; default GET).
   */
  kind?: 'manifest' | 'blob';
  method?: 'GET' | 'HEAD';
  /** The pull's access to the repository was verified at its registry (--verify-pull-access): peers are asked with the assertion. */
  verified?: boolean;
  /** The client follows a redirect for this request (containerd's GET of a whole blob): a peer's blob may be answered with one (LocatedContent.redirect). */
  redirectable?: boolean;
}

export interface ResolvedTag {
  digest: string;
  /** Which source answered, for the access log (`local` or `peer`). */
  source: string;
  /** The peer that answered, when source is a peer. */
  peer?: string;
}

export interface LocatedContent {
  info: BlobInfo;
  source: string;
  /** The peer that answered, when source is a peer. */
  peer?: string;
  /** The bytes (all, or the inclusive range). Rejects with NotFoundError when gone meanwhile. */
  read(range?: ByteRange): Promise<Readable>;
  /**
   * The content can be checked only whole (a peer's blob: its digest covers
   * every byte, and a peer's part could not be verified), so it is served
   * whole: a Range is answered 200 with all of it, as HTTP lets a server
   * do, and read() is called without a range. containerd then skips to its
   * offset (it reads and drops the bytes before it), and its chunked fetch
   * (2.1+) reads on sequentially from the first answer.
   */
  wholeOnly?: boolean;
  /**
   * The chunks of read()'s stream are lent (views of buffers read into
   * again): call this with each chunk once the client's socket took it.
   * A chunk never given back is only not reused.
   */
  giveBack?(chunk: Uint8Array): void;
  /**
   * The first byte may be long in coming (a blob still being fetched from the
   * upstream, on this node or on the peer it streams from): the status line
   * and headers are sent at once, so that a failure before the first byte is
   * a body cut short, which containerd asks the mirror again for, rather than
   * an error answer, which sends containerd to the upstream.
   */
  headersFirst?: boolean;
  /**
   * Optional fast path: the content as an opened regular file holding exactly
   * `info.size` bytes (the caller closes it), or undefined to use read().
   */
  openFile?(): Promise<FileHandle | undefined>;
  /**
   * Optional fast path for content read whole anyway (a manifest): all of it
   * as one buffer the store keeps in memory, or undefined to use read().
   * Rejects with NotFoundError when gone meanwhile.
   */
  readWhole?(): Promise<Buffer | undefined>;
  /**
   * Answer with a 307 to `location` (a holder's agent, a signed URL) instead
   * of the bytes; `taken()` is called when the registry does (internal/peer/redirect-path.ts).
   */
  redirect?: { location: string; taken(): void };
  /**
   * Frees what locate() holds open (a peer's response) that read() has not
   * taken over. Callers call it when done with the content, whether or not
   * they read it; harmless after read() and when called twice.
   */
  release?(): void;
}

/**
 * A ContentStore whose content lives in regular files (containerd's content
 * directory) can offer them for the registry's fast path
 * (../registry/send-file.ts). The file must hold exactly the content;
 * undefined when not available as a file.
 */
export interface FileBackedStore extends ContentStore {
  openFile(digest: string): Promise<FileHandle | undefined>;
}

function isFileBacked(store: ContentStore): store is FileBackedStore {
  return typeof (store as Partial<FileBackedStore>).openFile === 'function';
}

/**
 * A ContentStore that keeps some content whole in memory (containerd's served
 * view keeps verified manifests: internal/containerd/manifest-files.ts) can
 * hand it over without a stream: a Readable with its events and ticks, for a
 * body already in memory, doubled a manifest GET's p99 under bench:serve's
 * load (64 clients, alternated runs: 6.1-7.2 ms with readWhole, 12.9-13.1 ms
 * through read()). Undefined when not kept whole.
 */
export interface WholeReadableStore extends ContentStore {
  readWhole(digest: string): Promise<Buffer | undefined>;
}

function isWholeReadable(store: ContentStore): store is WholeReadableStore {
  return typeof (store as Partial<WholeReadableStore>).readWhole === 'function';
}

export interface ContentSource {
  resolveTag(request: ContentRequest, tag: string): Promise<ResolvedTag | undefined>;
  locate(request: ContentRequest, digest: string): Promise<LocatedContent | undefined>;
}

/** The node's own content store as a source; tags resolve via the image reference `registry/name:tag`. */
export function storeSource(store: ContentStore, sourceName = 'local'): ContentSource {
  const fileBacked = isFileBacked(store) ? store : undefined;
  const wholeReadable = isWholeReadable(store) ? store : undefined;
  return {
    async resolveTag(request, tag) {
      const digest = await store.resolve(imageReference(request.registry, request.name, tag));
      return digest === undefined ? undefined : { digest, source: sourceName };
    },
    async locate(_request, digest) {
      const info = await store.stat(digest);
      if (info === undefined) return undefined;
      const located: LocatedContent = { info, source: sourceName, read: (range) => store.read(digest, range) };
      if (fileBacked !== undefined) located.openFile = () => fileBacked.openFile(digest);
      if (wholeReadable !== undefined) located.readWhole = () => wholeReadable.readWhole(digest);
      return located;
    },
  };
}

/** Asks each source in order; the first that has the content answers. */
export function chainSources(sources: readonly ContentSource[]): ContentSource {
  return {
    async resolveTag(request, tag) {
      for (const source of sources) {
        const resolved = await source.resolveTag(request, tag);
        if (resolved !== undefined) return resolved;
      }
      return undefined;
    },
    async locate(request, digest) {
      for (const source of sources) {
        const located = await source.locate(request, digest);
        if (located !== undefined) return located;
      }
      return undefined;
    },
  };
}
