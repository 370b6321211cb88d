import { createMemoryStore } from './memory-store.ts';
import { imageBlobs, runStoreConformance } from './conformance.ts';

runStoreConformance('memory store', async () => {
  const store = createMemoryStore();
  return {
    store,
    async add(image) {
      for (const blob of imageBlobs(image)) store.put(blob.bytes, blob.mediaType);
      store.tag(image.reference, image.manifest.digest);
    },
    async remove(digest) {
      store.delete(digest);
    },
    async teardown() {},
  };
});
