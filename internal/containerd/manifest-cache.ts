// The verified manifest bodies manifest-files.ts keeps in memory, bounded by
// the total size of the bodies. Its own file because the bound is a memory
// decision of its own (the agent runs in a pod with a memory limit): the
// budget counts body bytes, and a body over 1/16 of it is not kept, so a few
// large manifests cannot push out every small one.
//
// Eviction is CLOCK (second chance), an approximation of least recently used
// that changes nothing on a hit but a flag: a Map reordered on every hit
// (delete, set) allocated about 300 bytes per manifest GET in a heap
// sampling profile (its table rehashed); a flag allocates nothing.

/** A body that matched its digest, the file it came from, and when that file was last seen present (performance.now()). */
export interface VerifiedBody {
  readonly body: Buffer;
  readonly path: string;
  seenAtMs: number;
}

export interface ManifestCache {
  get(digest: string): VerifiedBody | undefined;
  put(digest: string, entry: VerifiedBody): void;
  delete(digest: string): void;
  /** Drops every entry whose digest `keep` refuses. */
  retain(keep: (digest: string) => boolean): void;
  /** Body bytes kept now. */
  bytes(): number;
}

interface Slot {
  entry: VerifiedBody;
  /** Used since the clock hand last passed it. */
  used: boolean;
}

export function createManifestCache(budgetBytes: number): ManifestCache {
  /** Oldest first: the clock hand starts at the front. */
  const slots = new Map<string, Slot>();
  let total = 0;
  const remove = (digest: string): void => {
    const slot = slots.get(digest);
    if (slot === undefined) return;
    slots.delete(digest);
    total -= slot.entry.body.length;
  };
  /** Evicts until within budget: a used entry gets a second chance (moved to the back, flag cleared). */
  const evict = (): void => {
    while (total > budgetBytes) {
      const oldest = slots.entries().next();
      if (oldest.done === true) return;
      const [digest, slot] = oldest.value;
      slots.delete(digest);
      if (slot.used) {
        slot.used = false;
        slots.set(digest, slot);
      } else total -= slot.entry.body.length;
    }
  };
  return {
    get(digest) {
      const slot = slots.get(digest);
      if (slot === undefined) return undefined;
      slot.used = true;
      return slot.entry;
    },
    put(digest, entry) {
      if (entry.body.length > budgetBytes / 16) return;
      remove(digest);
      slots.set(digest, { entry, used: false });
      total += entry.body.length;
      evict();
    },
    delete: remove,
    retain(keep) {
      for (const digest of [...slots.keys()]) if (!keep(digest)) remove(digest);
    },
    bytes: () => total,
  };
}
