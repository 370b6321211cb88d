// The node's keys: what this node can serve to its peers, kept in step with
// containerd. For every image in the namespace whose registry (the first
// component of its name: `docker.io` of `docker.io/library/nginx:1.27`) is
// mirrored, the keys are the image reference itself (the name as containerd
// stores it, for tag resolution through peers) and the digest of every piece
// of its content present in the store (walk.ts).
//
// The keys are a view of the node's image inventory
// (internal/containerd/inventory.ts), which lists and walks the images and
// keeps in step with containerd's events (resync -> full relist; image
// created/updated -> that image walked again; image deleted -> dropped at
// once, and every image walked again once garbage collection settled; content
// deleted -> dropped at once and its images walked again, also when deleted
// while a step runs; a failed step retried; a full re-walk every 5 minutes as
// a safety net). This view rebuilds the keys after each change of the
// inventory (the key table keeps per-image digests reference counted), and
// calls onChange only when the set of keys really changed.
import type { ImageInventory } from '../containerd/inventory.ts';
import type { Logger } from '../log/logger.ts';
import { createKeyTable, type KeyTable } from './key-table.ts';

export interface NodeStateOptions {
  /** The node's image inventory (shared with the served store); feed it containerd's changes. */
  inventory: ImageInventory;
  /** Registries whose images count (e.g. `docker.io`); empty = all. */
  mirroredRegistries: readonly string[];
  logger: Logger;
  /** Called with the new set of keys each time it changed (the caller debounces publishing). */
  onChange(keys: ReadonlySet<string>): void;
}

export interface NodeState {
  /** The current keys (the same object until the next change). */
  keys(): ReadonlySet<string>;
  /** A full relist and walk of the inventory; rejects when containerd could not be listed (a retry is scheduled). */
  refresh(): Promise<void>;
  /** Stops following the inventory; the keys stay as they are (the inventory is closed by its owner). */
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

export function createNodeState(options: NodeStateOptions): NodeState {
  const { inventory } = options;
  const log = options.logger.child({ component: 'node-state' });
  const isMirrored = mirroredImages(options.mirroredRegistries);
  const table: KeyTable = createKeyTable();

  const update = (): void => {
    const images = new Map<string, string[]>();
    for (const [name, target] of inventory.images()) {
      if (isMirrored(name))
        images.set(
          name,
          (inventory.contentOf(target) ?? []).map((d) => d.digest),
        );
    }
    table.replaceAll(images);
    const changed = table.commit();
    if (changed === undefined) return;
    try {
      options.onChange(changed);
    } catch (err) {
      log.warn({ err }, 'key change handler failed');
    }
  };
  const unsubscribe = inventory.onChange(update);
  update();

  return {
    keys: () => table.keys(),
    refresh: () => inventory.refresh(true),
    close: unsubscribe,
  };
}
