// The containerd store as the registry serves it (store.ts, imagedOnly()):
// only content of the images `includeImage` accepts (the mirrored
// registries' images), as the image inventory (inventory.ts) knows them.
//
// - Tags resolve from the inventory's image list, in memory: no images Get.
// - Manifests and indexes (a descriptor the inventory's walk found with a
//   manifest or index media type): presence, size and media type from the
//   inventory, bytes from the file in containerd's content directory, checked
//   against the descriptor's size and digest (manifest-files.ts): no content
//   Info, no gRPC at all. A missing or mismatching file is a miss. The kept
//   bytes are handed over whole (readWhole(), no stream: see
//   WholeReadableStore in internal/content/source.ts).
// - Everything else (layers, configs) keeps the store's path: content Info,
//   then the file (gRPC Read as fallback).
// - A digest outside those images is a miss at once, without a gRPC call.
//
// How stale: the inventory follows containerd's image and content events,
// which containerd pushes as they happen (against containerd 2.1 the view had
// followed `ctr`'s change 0-1 ms after ctr exited). A new or moved tag is
// answered once the inventory has walked it (an images Get and a content Info
// per descriptor after the event: until then a new tag misses and a moved one
// answers its previous target, whose content is still there); a deleted
// image, and deleted content, miss as soon as their event arrives, and a
// manifest file gone without an event at the next request. An event
// lost while the stream stayed up is caught by the inventory's full relist
// (every 5 minutes); events lost while disconnected by the relist after every
// reconnection. While containerd is down the view answers from memory:
// manifests whose file is there and verifies (the node still has those bytes,
// whatever containerd's state), and /readyz says not ready.
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Logger } from '../log/logger.ts';
import { isAnyManifestMediaType } from '../oci/mediatype.ts';
import { NotFoundError, type ContentStore } from '../oci/store.ts';
import { assertByteRange, clampRange } from './blobs.ts';
import type { ImageInventory } from './inventory.ts';
import { createManifestFiles } from './manifest-files.ts';
import type { Descriptor } from './messages.ts';

/**
 * readWhole() and read() come right after the stat() of the same request (the
 * registry's storeSource.locate), which looked at the manifest's file: a look
 * this recent is not repeated (one access() less per GET).
 */
const READ_TRUSTS_LOOK_MS = 100;

/** A content store whose blobs can also be had as open files (the registry's fast path: FileBackedStore in internal/content/source.ts). */
export interface FileStore extends ContentStore {
  openFile(digest: string): Promise<FileHandle | undefined>;
}

/** The served view: also manifests as the verified bytes kept in memory (WholeReadableStore in internal/content/source.ts). */
export interface ServedStore extends FileStore {
  /** A listed manifest's verified bytes; undefined for other content (read() then); NotFoundError when gone. */
  readWhole(digest: string): Promise<Buffer | undefined>;
}

export interface ImagedViewOptions {
  inventory: ImageInventory;
  /** The whole store: what is not a manifest is asked there (with containerd). */
  store: FileStore;
  contentPath: string;
  includeImage(imageName: string): boolean;
  logger: Logger;
  /** Bytes of verified manifest bodies kept in memory (manifest-files.ts). */
  manifestCacheBytes?: number;
}

/** The descriptors of the images `includeImage` accepts by digest, rebuilt when the inventory changed; `rebuilt` is told each time. */
function listedDescriptors(options: ImagedViewOptions, rebuilt: (listed: ReadonlyMap<string, Descriptor>) => void): (digest: string) => Descriptor | undefined {
  const { inventory, includeImage } = options;
  let listed = new Map<string, Descriptor>();
  let listedAt: number | undefined;
  return (digest) => {
    if (listedAt !== inventory.generation()) {
      listed = new Map();
      for (const [name, target] of inventory.images()) {
        if (!includeImage(name)) continue;
        for (const descriptor of inventory.contentOf(target) ?? []) listed.set(descriptor.digest, descriptor);
      }
      listedAt = inventory.generation();
      rebuilt(listed);
    }
    return listed.get(digest);
  };
}

/** The bytes of a verified body, all or the inclusive range. */
function streamOf(body: Buffer, range: Parameters<ContentStore['read']>[1]): Readable {
  const bytes = clampRange(range, body.length);
  // (A Buffer, not [Buffer]: from() then pushes it at once, without an async iterator.)
  return bytes === undefined ? Readable.from([]) : Readable.from(body.subarray(bytes.start, bytes.end + 1));
}

export function createImagedView(options: ImagedViewOptions): ServedStore {
  const { inventory, store, includeImage } = options;
  const log = options.logger.child({ component: 'containerd-store' });
  const manifests = createManifestFiles({
    contentPath: options.contentPath,
    cacheBytes: options.manifestCacheBytes,
    onMismatch: (descriptor, reason) => log.warn({ digest: descriptor.digest, reason }, 'manifest file does not match its descriptor: not served'),
  });
  const listed = listedDescriptors(options, (descriptors) => manifests.retain((digest) => descriptors.has(digest)));
  /** The listed descriptor of a manifest or index, answered from memory and its file. */
  const manifestOf = (descriptor: Descriptor | undefined): descriptor is Descriptor => descriptor !== undefined && isAnyManifestMediaType(descriptor.mediaType);

  /** A listed manifest's verified bytes (NotFoundError: not listed, or its file missing or mismatching); undefined: ask the store. */
  const manifestBody = async (digest: string): Promise<Buffer | undefined> => {
    const descriptor = listed(digest);
    if (descriptor === undefined) throw new NotFoundError(digest.slice(0, 100));
    if (!manifestOf(descriptor)) return undefined;
    const body = await manifests.load(descriptor, { seenWithinMs: READ_TRUSTS_LOOK_MS });
    if (body === 'miss') throw new NotFoundError(digest);
    return body === 'unreadable' ? undefined : body;
  };

  return {
    resolve: async (reference) => (includeImage(reference) ? inventory.images().get(reference) : undefined),
    async stat(digest) {
      const descriptor = listed(digest);
      if (descriptor === undefined) return undefined;
      if (!manifestOf(descriptor)) return store.stat(digest);
      const body = await manifests.load(descriptor);
      if (body === 'unreadable') return store.stat(digest);
      return body === 'miss' ? undefined : { digest, size: descriptor.size, mediaType: descriptor.mediaType };
    },
    async read(digest, range) {
      assertByteRange(range);
      const body = await manifestBody(digest);
      return body === undefined ? store.read(digest, range) : streamOf(body, range);
    },
    readWhole: manifestBody,
    openFile: async (digest) => (listed(digest) === undefined ? undefined : store.openFile(digest)),
  };
}
