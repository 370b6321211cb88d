// The node's keys: what this node can serve to its peers, kept in step with
// containerd. For every image in the namespace whose registry (the first
// component of its name: `docker.io` of `docker.io/library/nginx:1.27`) is
// mirrored, the keys are the image reference itself (the name as containerd
// stores it, for tag resolution through peers) and the digest of every piece
// of its content present in the store (walk.ts).
//
// Keeping in step (feed it the changes of internal/containerd/events.ts):
// - resync (after every (re)connection to containerd's events) -> full relist.
// - image created/updated -> walk that image again (containerd 1.6 sends no
//   content events for a pull; the image event comes after the pull).
// - image deleted -> its keys are dropped at once unless another image still
//   has them; and, because garbage collection deletes content without any
//   event, every image is walked again `gcSettleMs` later (debounced).
// - content deleted (`ctr content rm`) -> the digest is dropped at once and
//   the images that had it are walked again (what only it referenced is no
//   longer reachable).
// - Safety net: a full re-walk every `rewalkIntervalMs` (default 5 minutes)
//   catches anything no event announced (content lost without an event,
//   events dropped by a bug). It costs a content Info per descriptor.
// All work runs one step at a time (a full sync or a batch of images), so
// events that arrive meanwhile are applied after it, in order. onChange is
// called only when the set of keys really changed.
import type { ContainerdClient } from '../containerd/client.ts';
import type { ContainerdChange } from '../containerd/events.ts';
import { mapConcurrent, WALK_CONCURRENCY, walkImage } from '../containerd/walk.ts';
import type { Logger } from '../log/logger.ts';
import { createKeyTable, type KeyTable } from './key-table.ts';

export interface NodeStateOptions {
  client: ContainerdClient;
  /** Registries whose images count (e.g. `docker.io`); empty = all. */
  mirroredRegistries: readonly string[];
  logger: Logger;
  /** Called with the new set of keys each time it changed (the caller debounces publishing). */
  onChange(keys: ReadonlySet<string>): void;
  /** Read manifests from containerd's content directory while walking (gRPC Read otherwise). */
  contentPath?: string;
  /** Full re-walk every this often, as a safety net (default 300000 ms; 0 = never). */
  rewalkIntervalMs?: number;
  /** Full re-walk this long after an image was deleted, once garbage collection ran (default 2000 ms). */
  gcSettleMs?: number;
  /** After a failed sync (containerd away), try again after this long (default 2000 ms). */
  retryMs?: number;
}

export interface NodeState {
  /** The current keys (the same object until the next change). */
  keys(): ReadonlySet<string>;
  /** Applies a change from watchChanges(). */
  observe(change: ContainerdChange): void;
  /** A full relist and walk; rejects when containerd could not be listed (a retry is scheduled). */
  refresh(): Promise<void>;
  /** Stops every timer; the keys stay as they are. */
  close(): void;
}

/** The registry of an image name: its first component, lower case (`` when it has none). */
export function registryOfImage(name: string): string {
  const slash = name.indexOf('/');
  return slash <= 0 ? '' : name.slice(0, slash).toLowerCase();
}

/** Whether an image name (e.g. `docker.io/library/nginx:1.27`) is of a mirrored registry; none listed: every image. */
export function mirroredImages(mirroredRegistries: readonly string[]): (imageName: string) => boolean {
  const mirrored = new Set(mirroredRegistries.map((host) => host.toLowerCase()));
  return (name) => mirrored.size === 0 || mirrored.has(registryOfImage(name));
}

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
}

export function createNodeState(options: NodeStateOptions): NodeState {
  const { client } = options;
  const log = options.logger.child({ component: 'node-state' });
  const isMirrored = mirroredImages(options.mirroredRegistries);
  const walkOptions = options.contentPath === undefined ? {} : { contentPath: options.contentPath };
  const gcSettleMs = options.gcSettleMs ?? 2000;
  const retryMs = options.retryMs ?? 2000;
  const table: KeyTable = createKeyTable();

  let full = false;
  let pendingNames = new Set<string>();
  let waiters: Waiter[] = [];
  let running = false;
  let closed = false;
  /** Digests deleted while a step ran: its result may still hold them. */
  const deletedMeanwhile = new Set<string>();
  let gcTimer: NodeJS.Timeout | undefined;
  let retryTimer: NodeJS.Timeout | undefined;

  const publish = (): void => {
    const changed = table.commit();
    if (changed === undefined) return;
    try {
      options.onChange(changed);
    } catch (err) {
      log.warn({ err }, 'key change handler failed');
    }
  };

  const walk = (target: Parameters<typeof walkImage>[1]): Promise<string[]> =>
    walkImage(client, target, walkOptions).then((found) => found.map((d) => d.digest));

  const syncAll = async (): Promise<void> => {
    const images = (await client.listImages()).filter((image) => isMirrored(image.name));
    const byTarget = new Map<string, Promise<string[]>>();
    const walked = await mapConcurrent(images, WALK_CONCURRENCY, async (image) => {
      let digests = byTarget.get(image.target.digest);
      if (digests === undefined) {
        digests = walk(image.target);
        byTarget.set(image.target.digest, digests);
      }
      return [image.name, await digests] as const;
    });
    table.replaceAll(new Map(walked));
  };

  const syncNames = async (names: ReadonlySet<string>): Promise<void> => {
    const results = await mapConcurrent([...names], WALK_CONCURRENCY, async (name) => {
      const image = isMirrored(name) ? await client.getImage(name) : undefined;
      return [name, image === undefined ? undefined : await walk(image.target)] as const;
    });
    for (const [name, digests] of results) {
      if (digests === undefined) table.deleteImage(name);
      else table.setImage(name, digests);
    }
  };

  const retryLater = (failedFull: boolean, failedNames: ReadonlySet<string>): void => {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      full ||= failedFull;
      for (const name of failedNames) pendingNames.add(name);
      schedule();
    }, retryMs);
    retryTimer.unref();
  };

  const drain = async (): Promise<void> => {
    while (!closed && (full || pendingNames.size > 0)) {
      const doFull = full;
      const names = pendingNames;
      const stepWaiters = doFull ? waiters : [];
      full = false;
      pendingNames = new Set();
      if (doFull) waiters = [];
      deletedMeanwhile.clear();
      try {
        if (doFull) await syncAll();
        else await syncNames(names);
      } catch (err) {
        log.warn({ err, full: doFull, images: names.size }, 'cannot read images from containerd; retrying later');
        for (const waiter of stepWaiters) waiter.reject(err);
        retryLater(doFull, names);
        return;
      }
      // Content deleted while this step ran: drop it again and look at its images once more.
      for (const digest of deletedMeanwhile) for (const name of table.dropDigest(digest)) pendingNames.add(name);
      deletedMeanwhile.clear();
      publish();
      for (const waiter of stepWaiters) waiter.resolve();
    }
  };

  const schedule = (): void => {
    if (running || closed) return;
    running = true;
    drain().finally(() => {
      running = false;
      // Work that came in after the loop's last check, unless it waits for a retry.
      if (!closed && retryTimer === undefined && (full || pendingNames.size > 0)) schedule();
    });
  };

  const fullLater = (delayMs: number): void => {
    clearTimeout(gcTimer);
    gcTimer = setTimeout(() => {
      full = true;
      schedule();
    }, delayMs);
    gcTimer.unref();
  };

  const rewalkTimer =
    (options.rewalkIntervalMs ?? 300_000) > 0
      ? setInterval(() => {
          full = true;
          schedule();
        }, options.rewalkIntervalMs ?? 300_000)
      : undefined;
  rewalkTimer?.unref();

  return {
    keys: () => table.keys(),
    observe(change) {
      if (closed) return;
      switch (change.kind) {
        case 'resync':
          full = true;
          break;
        case 'image-created':
        case 'image-updated':
          if (!isMirrored(change.name)) return;
          pendingNames.add(change.name);
          break;
        case 'image-deleted':
          // Drop at once; a step running now may still hold it, so check it again too.
          table.deleteImage(change.name);
          publish();
          if (isMirrored(change.name)) pendingNames.add(change.name);
          fullLater(gcSettleMs);
          break;
        case 'content-deleted':
          for (const name of table.dropDigest(change.digest)) pendingNames.add(name);
          if (running) deletedMeanwhile.add(change.digest);
          publish();
          break;
      }
      schedule();
    },
    refresh() {
      if (closed) return Promise.resolve();
      const done = new Promise<void>((resolve, reject) => waiters.push({ resolve, reject }));
      full = true;
      clearTimeout(retryTimer);
      retryTimer = undefined;
      schedule();
      return done;
    },
    close() {
      closed = true;
      clearTimeout(gcTimer);
      clearTimeout(retryTimer);
      clearInterval(rewalkTimer);
      for (const waiter of waiters) waiter.resolve();
      waiters = [];
    },
  };
}
