// The node's containerd as a ContentStore (internal/oci/store.ts).
//
// - resolve: images Get -> target digest.
// - stat: content Info (presence and size, per namespace, so deleted content is
//   gone at once), plus the media type from a digest -> mediaType map learned
//   by walking the images. The map is rebuilt from the walks of the current
//   images only (so it stays bounded and consistent with containerd); it is
//   synced in the background on image events and on demand when a present
//   digest has no known media type.
// - read: content Info, then the file in the content directory (gRPC fallback).
// - openFile: content Info, then the open file, for the registry's fast path
//   that sends from a few reused buffers.
// - imagedOnly(): the view the registry serves: only content of the mirrored
//   registries' images; other digests are "not here" from memory (see below).
import type { Logger } from '../log/logger.ts';
import { parseDigest } from '../oci/digest.ts';
import { NotFoundError, type BlobInfo, type ByteRange, type ContentStore } from '../oci/store.ts';
import { open, type FileHandle } from 'node:fs/promises';
import { blobPath, openBlob } from './blobs.ts';
import type { ContainerdClient } from './client.ts';
import type { ContainerdChange } from './events.ts';
import type { Descriptor } from './messages.ts';
import { WALK_CONCURRENCY, mapConcurrent, walkImage } from './walk.ts';
import { createSingleFlight } from '../sync/single-flight.ts';

export interface ContainerdStoreOptions {
  client: ContainerdClient;
  /** containerd's content directory, e.g. /var/lib/containerd/io.containerd.content.v1.content */
  contentPath: string;
  logger: Logger;
  /** Re-walk every image (not only new targets) at most this often, when a media type is missing. */
  fullWalkIntervalMs?: number;
}

export interface ContainerdStore extends ContentStore {
  /** The blob's file in the content directory, opened, when present in the namespace; undefined otherwise. */
  openFile(digest: string): Promise<FileHandle | undefined>;
  /** Feed changes from watchChanges() so media types follow containerd. */
  observe(change: ContainerdChange): void;
  /** Re-lists images and walks new or changed ones (force: every image). */
  refresh(force?: boolean): Promise<void>;
  /**
   * The store as the registry serves it: only content held by images that
   * `includeImage` accepts (the mirrored registries' images), as of the last
   * image walk, for containerd's requests and peers' alike; content of other
   * images (a private registry that is not mirrored) is never served, whatever
   * registry a request names. A digest outside them is absent at once,
   * without a gRPC call: containerd asks its mirror only for content it lacks,
   * and peers only for what this node advertises (the same images), so a miss
   * costs no round trip to a containerd that may be busy unpacking, and the
   * 404 that sends containerd upstream stays well under 5 ms. Tags likewise:
   * one no image had at the last walk is absent without a gRPC call (under
   * bench:load-peer every tag HEAD cost one before). Listed digests and known
   * tags are still checked with containerd (deleted content is gone at once).
   * Before the first successful walk nothing is listed.
   */
  imagedOnly(includeImage?: (imageName: string) => boolean): Pick<ContainerdStore, keyof ContentStore | 'openFile'>;
}

export function createContainerdStore(options: ContainerdStoreOptions): ContainerdStore {
  const { client, contentPath } = options;
  const log = options.logger.child({ component: 'containerd-store' });
  const fullWalkIntervalMs = options.fullWalkIntervalMs ?? 10_000;
  /** target digest -> present descriptors of the image(s) with that target. */
  let walks = new Map<string, Descriptor[]>();
  let mediaTypes = new Map<string, string>();
  let targets = new Map<string, string>();
  /** Targets to walk again at the next sync (their image was updated). */
  let stale = new Set<string>();
  let lastFullWalkMs = 0;
  let running: Promise<void> | undefined;
  let again: boolean | undefined;

  const sync = async (force: boolean): Promise<void> => {
    const rewalk = stale;
    stale = new Set();
    let images;
    let walkResults;
    try {
      images = await client.listImages();
      const unique = [...new Map(images.map((image) => [image.target.digest, image.target])).values()];
      walkResults = await mapConcurrent(unique, WALK_CONCURRENCY, async (target) => {
        const known = force || rewalk.has(target.digest) ? undefined : walks.get(target.digest);
        return [target.digest, known ?? (await walkImage(client, target, { contentPath }))] as const;
      });
    } catch (err) {
      for (const digest of rewalk) stale.add(digest);
      throw err;
    }
    const names = new Map(images.map((image) => [image.name, image.target.digest]));
    const next = new Map<string, Descriptor[]>(walkResults);
    if (force) lastFullWalkMs = Date.now();
    const types = new Map<string, string>();
    for (const descriptors of next.values()) for (const d of descriptors) types.set(d.digest, d.mediaType);
    walks = next;
    mediaTypes = types;
    targets = names;
  };

  /** Single flight: a refresh asked for while one runs makes one more run afterwards. */
  const refresh = (force = false): Promise<void> => {
    if (running !== undefined) {
      again = (again ?? false) || force;
      return running;
    }
    running = (async () => {
      try {
        let forceNow = force;
        for (;;) {
          await sync(forceNow);
          if (again === undefined) break;
          forceNow = again;
          again = undefined;
        }
      } finally {
        running = undefined;
      }
    })();
    return running;
  };

  const backgroundRefresh = (): void => {
    refresh().catch((err: unknown) => log.warn({ err }, 'cannot refresh image media types'));
  };

  const mediaTypeOf = async (digest: string): Promise<string | undefined> => {
    const known = mediaTypes.get(digest);
    if (known !== undefined) return known;
    try {
      await refresh(Date.now() - lastFullWalkMs > fullWalkIntervalMs);
    } catch (err) {
      log.warn({ err }, 'cannot refresh image media types');
    }
    return mediaTypes.get(digest);
  };

  const resolveFlight = createSingleFlight<string | undefined>();
  const store: ContainerdStore = {
    resolve: (reference) =>
      // Concurrent resolves of one reference (peers' tag HEADs during a rollout) share one images Get.
      resolveFlight.run(reference, async () => {
        const image = await client.getImage(reference);
        if (image === undefined) return undefined;
        if (!walks.has(image.target.digest)) backgroundRefresh();
        return image.target.digest;
      }),
    async stat(digest) {
      if (parseDigest(digest) === undefined) return undefined;
      const info = await client.contentInfo(digest);
      if (info === undefined) return undefined;
      const result: BlobInfo = { digest, size: info.size };
      const mediaType = await mediaTypeOf(digest);
      if (mediaType !== undefined) result.mediaType = mediaType;
      return result;
    },
    async read(digest, range?: ByteRange) {
      if (parseDigest(digest) === undefined) throw new NotFoundError(digest.slice(0, 100));
      if (range !== undefined && !(Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end) && range.start >= 0 && range.end >= range.start)) {
        throw new RangeError(`invalid byte range ${range.start}-${range.end}`);
      }
      const info = await client.contentInfo(digest);
      if (info === undefined) throw new NotFoundError(digest);
      return openBlob({ client, contentPath }, digest, info.size, range);
    },
    async openFile(digest) {
      if (parseDigest(digest) === undefined) return undefined;
      if ((await client.contentInfo(digest)) === undefined) return undefined;
      try {
        return await open(blobPath(contentPath, digest), 'r');
      } catch {
        return undefined;
      }
    },
    observe(change) {
      if (change.kind === 'content-deleted') {
        mediaTypes.delete(change.digest);
        return;
      }
      if (change.kind === 'image-updated' || change.kind === 'image-created') {
        // Same target, maybe more content (another platform pulled): walk it again.
        const target = targets.get(change.name);
        if (target !== undefined) stale.add(target);
      }
      backgroundRefresh();
    },
    refresh,
    imagedOnly(includeImage = () => true) {
      /** The digests of the accepted images, for the `targets` of one walk (rebuilt after the next). */
      let listed = new Set<string>();
      let listedFor: Map<string, string> | undefined;
      const unlisted = (digest: string): boolean => {
        if (listedFor !== targets) {
          listed = new Set();
          for (const [name, target] of targets) {
            if (!includeImage(name)) continue;
            for (const descriptor of walks.get(target) ?? []) listed.add(descriptor.digest);
          }
          listedFor = targets;
        }
        return !listed.has(digest);
      };
      return {
        // A tag no image had at the last walk is a miss from memory too; a known one is asked again (it may have moved).
        resolve: async (reference) => (includeImage(reference) && targets.has(reference) ? store.resolve(reference) : undefined),
        stat: async (digest) => (unlisted(digest) ? undefined : store.stat(digest)),
        read: async (digest, range) => {
          if (unlisted(digest)) throw new NotFoundError(digest.slice(0, 100));
          return store.read(digest, range);
        },
        openFile: async (digest) => (unlisted(digest) ? undefined : store.openFile(digest)),
      };
    },
  };
  return store;
}
