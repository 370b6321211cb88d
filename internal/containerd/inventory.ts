// The node's image inventory: the one place that lists containerd's images,
// walks them (walk.ts) and follows containerd's changes, so that what the
// registry serves (store.ts, imagedOnly()) and what the node advertises to
// its peers (internal/state/node-state.ts) are two views of one state and
// cost one walk, not two.
//
// It holds every image of the namespace: name -> target digest, and per
// target the present descriptors (walks are shared per target: images with
// one target are walked once), plus a digest -> mediaType map rebuilt from
// the walks of the current images only (bounded, consistent with containerd).
//
// Keeping in step (feed it the changes of events.ts):
// - resync (after every (re)connection to containerd's events) -> full relist
//   and re-walk of every target.
// - image created/updated -> walk that image again (containerd 1.6 sends no
//   content events for a pull; the image event comes after the pull; an update
//   with the same target may bring more content, e.g. another platform).
// - image deleted -> dropped at once, and looked at again (a step running now
//   may still hold it); because garbage collection deletes content without
//   any event, every image is walked again `gcSettleMs` later (debounced).
// - content deleted (`ctr content rm`) -> the digest is dropped at once and
//   the images that had it are walked again (what only it referenced is no
//   longer reachable).
// - Safety net: a full re-walk every `rewalkIntervalMs` (default 5 minutes)
//   catches anything no event announced (content lost without an event,
//   events dropped by a bug). It costs a content Info per descriptor.
// - refresh(): a relist that walks new targets only (force: every target);
//   the store asks for one when a present digest has no known media type.
// All work runs one step at a time (a relist or a batch of images), so events
// that arrive meanwhile are applied after it, in order; refreshes asked for
// while a step runs share the next relist (single flight). A failed step
// (containerd away) is tried again `retryMs` later. Listeners are told after
// every change (the views decide whether anything they show changed).
import type { Logger } from '../log/logger.ts';
import type { ImageContentClient } from './client.ts';
import type { ContainerdChange } from './events.ts';
import type { Descriptor } from './messages.ts';
import { mapConcurrent, WALK_CONCURRENCY, walkImage } from './walk.ts';

export interface ImageInventoryOptions {
  client: ImageContentClient;
  logger: Logger;
  /** Read manifests from containerd's content directory while walking (gRPC Read otherwise). */
  contentPath?: string;
  /** Full re-walk every this often, as a safety net (default 300000 ms; 0 = never). */
  rewalkIntervalMs?: number;
  /** Full re-walk this long after an image was deleted, once garbage collection ran (default 2000 ms). */
  gcSettleMs?: number;
  /** After a failed step (containerd away), try again after this long (default 2000 ms). */
  retryMs?: number;
}

export interface ImageInventory {
  /** Applies a change from watchChanges(). */
  observe(change: ContainerdChange): void;
  /**
   * Relists the images and walks new ones (force: every one); resolves after a
   * relist that started after the call, rejects when containerd could not be
   * listed (a retry is scheduled).
   */
  refresh(force?: boolean): Promise<void>;
  /** Image name -> target digest, as of the last step (the same map object until the next change). */
  images(): ReadonlyMap<string, string>;
  /** The present descriptors of the image(s) with this target, target first; undefined when not walked. */
  contentOf(target: string): readonly Descriptor[] | undefined;
  /** The media type a walk found for the digest. */
  mediaType(digest: string): string | undefined;
  /** Grows with every change of images or content: views rebuild what they derive when it moved. */
  generation(): number;
  /** When the last relist that walked every image finished (0: never). */
  lastFullWalkMs(): number;
  /** Calls `listener` after every change; returns the unsubscribe. */
  onChange(listener: () => void): () => void;
  /** Stops every timer and step; the content stays as it is. */
  close(): void;
}

type ListMode = 'none' | 'new' | 'all';

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
}

/** The maps a step replaces or edits, and the one media type map derived from them. */
interface Content {
  names: Map<string, string>;
  walks: Map<string, Descriptor[]>;
  types: Map<string, string>;
}

/** Removes a digest from every walk; returns the names of the images whose walk had it. */
function dropDigest(content: Content, digest: string): string[] {
  content.types.delete(digest);
  const targets = new Set<string>();
  for (const [target, descriptors] of content.walks) {
    if (!descriptors.some((d) => d.digest === digest)) continue;
    content.walks.set(
      target,
      descriptors.filter((d) => d.digest !== digest),
    );
    targets.add(target);
  }
  if (targets.size === 0) return [];
  return [...content.names].filter(([, target]) => targets.has(target)).map(([name]) => name);
}

/** Walks no image names any more are dropped; the media types are rebuilt from the rest. */
function settle(content: Content): void {
  const used = new Set(content.names.values());
  for (const target of content.walks.keys()) if (!used.has(target)) content.walks.delete(target);
  const types = new Map<string, string>();
  for (const descriptors of content.walks.values()) for (const d of descriptors) types.set(d.digest, d.mediaType);
  content.types = types;
}

/** The two kinds of step: a relist (walking new targets, or all), and a batch of images by name. */
interface Steps {
  relist(force: boolean): Promise<void>;
  images(names: ReadonlySet<string>): Promise<void>;
}

function createSteps(client: ImageContentClient, contentPath: string | undefined, content: Content): Steps {
  const walkOptions = contentPath === undefined ? {} : { contentPath };
  return {
    async relist(force: boolean): Promise<void> {
      const images = await client.listImages();
      const unique = [...new Map(images.map((image) => [image.target.digest, image.target])).values()];
      const walked = await mapConcurrent(unique, WALK_CONCURRENCY, async (target) => {
        const known = force ? undefined : content.walks.get(target.digest);
        return [target.digest, known ?? (await walkImage(client, target, walkOptions))] as const;
      });
      content.names = new Map(images.map((image) => [image.name, image.target.digest]));
      content.walks = new Map(walked);
    },
    async images(names: ReadonlySet<string>): Promise<void> {
      const byTarget = new Map<string, Promise<Descriptor[]>>();
      const results = await mapConcurrent([...names], WALK_CONCURRENCY, async (name) => {
        const image = await client.getImage(name);
        if (image === undefined) return { name, target: undefined, descriptors: [] };
        let walk = byTarget.get(image.target.digest);
        if (walk === undefined) {
          walk = walkImage(client, image.target, walkOptions);
          byTarget.set(image.target.digest, walk);
        }
        return { name, target: image.target.digest, descriptors: await walk };
      });
      const next = new Map(content.names);
      for (const { name, target, descriptors } of results) {
        if (target === undefined) next.delete(name);
        else {
          next.set(name, target);
          content.walks.set(target, descriptors);
        }
      }
      content.names = next;
    },
  };
}

interface QueueOptions {
  content: Content;
  steps: Steps;
  log: Logger;
  retryMs: number;
  /** After a step was applied (mode: the relist it was, 'none' for a batch of images). */
  applied(mode: ListMode): void;
}

/** The work to do, run one step at a time: relists asked for (with their waiters), images to walk again, retries. */
interface Queue {
  /** Asks for a relist: 'new' walks new targets, 'all' every one. */
  ask(mode: ListMode): void;
  /** Asks for these images to be walked again. */
  again(names: readonly string[]): void;
  /** Asks for a relist now (a waiting retry is dropped); settles with it (the caller checks it is not closed). */
  relist(force: boolean): Promise<void>;
  /** A digest deleted now: a running step's result may still hold it. */
  deleted(digest: string): void;
  schedule(): void;
  close(): void;
}

/** The relist that covers both asks. */
function mergeModes(a: ListMode, b: ListMode): ListMode {
  if (a === 'all' || b === 'all') return 'all';
  return a === 'new' || b === 'new' ? 'new' : 'none';
}

function createQueue(options: QueueOptions): Queue {
  const { content, steps, log } = options;
  let list: ListMode = 'none';
  let pendingNames = new Set<string>();
  let waiters: Waiter[] = [];
  let running = false;
  let closed = false;
  /** Digests deleted while a step ran: its result may still hold them. */
  const deletedMeanwhile = new Set<string>();
  let retryTimer: NodeJS.Timeout | undefined;

  const ask = (mode: ListMode): void => {
    list = mergeModes(list, mode);
  };
  const pending = (): boolean => list !== 'none' || pendingNames.size > 0;

  const retryLater = (failedList: ListMode, failedNames: ReadonlySet<string>): void => {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      ask(failedList);
      for (const name of failedNames) pendingNames.add(name);
      schedule();
    }, options.retryMs);
    retryTimer.unref();
  };

  /** One step: a relist when one is asked for (a full one covers the pending images), else the pending images. */
  const step = async (): Promise<boolean> => {
    const mode = list;
    const names = mode === 'new' ? new Set<string>() : pendingNames;
    const stepWaiters = mode === 'none' ? [] : waiters;
    list = 'none';
    if (mode !== 'new') pendingNames = new Set();
    if (mode !== 'none') waiters = [];
    deletedMeanwhile.clear();
    try {
      if (mode === 'none') await steps.images(names);
      else await steps.relist(mode === 'all');
    } catch (err) {
      log.warn({ err, relist: mode, images: names.size }, 'cannot read images from containerd; retrying later');
      for (const waiter of stepWaiters) waiter.reject(err);
      retryLater(mode, mode === 'all' ? new Set() : names);
      return false;
    }
    // Content deleted while this step ran: drop it again and look at its images once more.
    for (const digest of deletedMeanwhile) for (const name of dropDigest(content, digest)) pendingNames.add(name);
    deletedMeanwhile.clear();
    settle(content);
    options.applied(mode);
    for (const waiter of stepWaiters) waiter.resolve();
    return true;
  };

  const drain = async (): Promise<void> => {
    while (!closed && pending()) if (!(await step())) return;
  };

  const schedule = (): void => {
    if (running || closed) return;
    running = true;
    void drain().finally(() => {
      running = false;
      // Work that came in after the loop's last check, unless it waits for a retry.
      if (!closed && retryTimer === undefined && pending()) schedule();
    });
  };

  return {
    ask,
    again: (names) => names.forEach((name) => pendingNames.add(name)),
    relist(force) {
      const done = new Promise<void>((resolve, reject) => waiters.push({ resolve, reject }));
      ask(force ? 'all' : 'new');
      clearTimeout(retryTimer);
      retryTimer = undefined;
      schedule();
      return done;
    },
    deleted: (digest) => void (running && deletedMeanwhile.add(digest)),
    schedule,
    close() {
      closed = true;
      clearTimeout(retryTimer);
      for (const waiter of waiters) waiter.resolve();
      waiters = [];
    },
  };
}

/** Tells every listener, each failure logged and contained. */
function notifier(log: Logger): { listeners: Set<() => void>; notify(): void } {
  const listeners = new Set<() => void>();
  return {
    listeners,
    notify() {
      for (const listener of listeners) {
        try {
          listener();
        } catch (err) {
          log.warn({ err }, 'inventory change listener failed');
        }
      }
    },
  };
}

export function createImageInventory(options: ImageInventoryOptions): ImageInventory {
  const log = options.logger.child({ component: 'image-inventory' });
  const gcSettleMs = options.gcSettleMs ?? 2000;
  const rewalkIntervalMs = options.rewalkIntervalMs ?? 300_000;
  const content: Content = { names: new Map(), walks: new Map(), types: new Map() };
  const { listeners, notify } = notifier(log);
  let generation = 0;
  let lastFullWalkMs = 0;
  let closed = false;
  let gcTimer: NodeJS.Timeout | undefined;
  const changed = (): void => {
    generation++;
    notify();
  };
  const queue = createQueue({
    content,
    steps: createSteps(options.client, options.contentPath, content),
    log,
    retryMs: options.retryMs ?? 2000,
    applied(mode) {
      if (mode === 'all') lastFullWalkMs = Date.now();
      changed();
    },
  });
  const fullNow = (): void => {
    queue.ask('all');
    queue.schedule();
  };
  const rewalkTimer = rewalkIntervalMs > 0 ? setInterval(fullNow, rewalkIntervalMs) : undefined;
  rewalkTimer?.unref();

  const observe = (change: ContainerdChange): void => {
    if (closed) return;
    switch (change.kind) {
      case 'resync':
        queue.ask('all');
        break;
      case 'image-created':
      case 'image-updated':
        queue.again([change.name]);
        break;
      case 'image-deleted':
        // Drop at once; a step running now may still hold it, so check it again too.
        if (content.names.has(change.name)) {
          content.names = new Map(content.names);
          content.names.delete(change.name);
          settle(content);
          changed();
        }
        queue.again([change.name]);
        clearTimeout(gcTimer);
        gcTimer = setTimeout(fullNow, gcSettleMs);
        gcTimer.unref();
        break;
      case 'content-deleted':
        queue.again(dropDigest(content, change.digest));
        queue.deleted(change.digest);
        changed();
        break;
    }
    queue.schedule();
  };

  return {
    observe,
    refresh: (force = false) => (closed ? Promise.resolve() : queue.relist(force)),
    images: () => content.names,
    contentOf: (target) => content.walks.get(target),
    mediaType: (digest) => content.types.get(digest),
    generation: () => generation,
    lastFullWalkMs: () => lastFullWalkMs,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      closed = true;
      clearTimeout(gcTimer);
      clearInterval(rewalkTimer);
      queue.close();
    },
  };
}
