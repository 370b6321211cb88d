// The keys per image, and the published set: every image name plus every
// digest some image still has (reference counted, so dropping one image keeps
// the digests another image shares). commit() builds the new set only when
// something was touched, and reports it only when it really differs.

export interface KeyTable {
  /** Sets the present content of an image (replacing what it had). */
  setImage(name: string, digests: readonly string[]): void;
  deleteImage(name: string): void;
  /** Replaces every image at once (a full sync). */
  replaceAll(images: ReadonlyMap<string, readonly string[]>): void;
  /** Removes a digest from every image; returns the names of the images that had it. */
  dropDigest(digest: string): string[];
  /** The last committed set. */
  keys(): ReadonlySet<string>;
  /** Publishes the current content: the new set when it differs from the last one, else undefined. */
  commit(): ReadonlySet<string> | undefined;
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const key of a) if (!b.has(key)) return false;
  return true;
}

export function createKeyTable(): KeyTable {
  const images = new Map<string, Set<string>>();
  const refs = new Map<string, number>();
  let published: ReadonlySet<string> = new Set();
  let dirty = false;

  const unref = (digest: string): void => {
    const count = refs.get(digest) ?? 0;
    if (count <= 1) refs.delete(digest);
    else refs.set(digest, count - 1);
  };

  const deleteImage = (name: string): void => {
    const digests = images.get(name);
    if (digests === undefined) return;
    images.delete(name);
    for (const digest of digests) unref(digest);
    dirty = true;
  };

  const setImage = (name: string, list: readonly string[]): void => {
    deleteImage(name);
    const digests = new Set(list);
    images.set(name, digests);
    for (const digest of digests) refs.set(digest, (refs.get(digest) ?? 0) + 1);
    dirty = true;
  };

  return {
    setImage,
    deleteImage,
    replaceAll(next) {
      images.clear();
      refs.clear();
      for (const [name, digests] of next) setImage(name, digests);
      dirty = true;
    },
    dropDigest(digest) {
      if (!refs.has(digest)) return [];
      const had: string[] = [];
      for (const [name, digests] of images) {
        if (digests.delete(digest)) had.push(name);
      }
      refs.delete(digest);
      dirty = true;
      return had;
    },
    keys: () => published,
    commit() {
      if (!dirty) return undefined;
      dirty = false;
      const next = new Set<string>(images.keys());
      for (const digest of refs.keys()) next.add(digest);
      if (sameSet(next, published)) return undefined;
      published = next;
      return next;
    },
  };
}
