// An in-memory twin of the parts of containerd the image inventory, the store
// and the node's keys use (client.ts: ImageLister, ContentInfoSource,
// ContentReader, IngestControl), so their unit tests run without a real
// containerd. Content can also be written to a content directory
// (<dir>/blobs/sha256/<hex>), as containerd lays it out, for the store's file
// paths. Calls are counted; a call can be made to fail (containerd away) or
// wait on a gate (a step still running). Test support: product code never
// imports this folder. The real containerd stays the conformance check
// (store.containerd.test.ts, node-state.containerd.test.ts, walk.containerd.test.ts run against it).
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { ImageContentClient, IngestControl } from '../client.ts';
import type { ContentInfo, Descriptor, ImageRecord, IngestStatus } from '../messages.ts';

export interface MemoryBlob {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

export type MemoryCall = 'listImages' | 'getImage' | 'contentInfo' | 'readContent';

export interface MemoryContainerd extends ImageContentClient, IngestControl {
  /** Calls per method since the last resetCalls(). */
  readonly calls: Record<MemoryCall, number>;
  resetCalls(): void;
  /** Adds (or moves) an image; its blobs become present content. */
  putImage(name: string, target: MemoryBlob, blobs?: readonly MemoryBlob[]): Promise<void>;
  /** Adds content without an image. */
  putBlobs(blobs: readonly MemoryBlob[]): Promise<void>;
  deleteImage(name: string): void;
  /** Deletes content (as `ctr content rm` or garbage collection). */
  deleteContent(digest: string): Promise<void>;
  /** While set, every call rejects with this error (containerd away). */
  failWith(err: Error | undefined): void;
  /**
   * While set, these calls wait for the gate before they answer (a step that
   * is still running); contentInfo answers with what was there when called.
   */
  hold(gate: Promise<void> | undefined, held?: readonly MemoryCall[]): void;
  /** Ingests in progress (for abortIngestsOf). */
  ingests: IngestStatus[];
}

export interface MemoryContainerdOptions {
  /** Also write content to this content directory. */
  contentPath?: string;
}

export function createMemoryContainerd(options: MemoryContainerdOptions = {}): MemoryContainerd {
  const images = new Map<string, Descriptor>();
  const content = new Map<string, Buffer>();
  const calls: Record<MemoryCall, number> = { listImages: 0, getImage: 0, contentInfo: 0, readContent: 0 };
  let failure: Error | undefined;
  let gate: Promise<void> | undefined;
  let heldCalls: readonly MemoryCall[] = [];

  const enter = async (call: MemoryCall): Promise<void> => {
    calls[call]++;
    if (gate !== undefined && heldCalls.includes(call)) await gate;
    if (failure !== undefined) throw failure;
  };
  const fileOf = (digest: string): string | undefined =>
    options.contentPath === undefined ? undefined : join(options.contentPath, 'blobs', ...digest.split(':'));
  const record = (name: string, target: Descriptor): ImageRecord => ({ name, target: { ...target }, labels: {} });
  const putBlobs = async (blobs: readonly MemoryBlob[]): Promise<void> => {
    for (const blob of blobs) {
      content.set(blob.digest, blob.bytes);
      const file = fileOf(blob.digest);
      if (file === undefined) continue;
      await mkdir(join(file, '..'), { recursive: true });
      await writeFile(file, blob.bytes);
    }
  };

  const twin: MemoryContainerd = {
    calls,
    ingests: [],
    resetCalls: () => (Object.keys(calls) as MemoryCall[]).forEach((call) => (calls[call] = 0)),
    async putImage(name, target, blobs = []) {
      await putBlobs([target, ...blobs]);
      images.set(name, { mediaType: target.mediaType, digest: target.digest, size: target.bytes.length });
    },
    putBlobs,
    deleteImage: (name) => void images.delete(name),
    async deleteContent(digest) {
      content.delete(digest);
      const file = fileOf(digest);
      if (file !== undefined) await rm(file, { force: true });
    },
    failWith: (err) => void (failure = err),
    hold(next, held = ['listImages', 'getImage']) {
      gate = next;
      heldCalls = held;
    },
    async listImages() {
      await enter('listImages');
      return [...images].map(([name, target]) => record(name, target));
    },
    async getImage(name) {
      await enter('getImage');
      const target = images.get(name);
      return target === undefined ? undefined : record(name, target);
    },
    async contentInfo(digest): Promise<ContentInfo | undefined> {
      const bytes = content.get(digest);
      await enter('contentInfo');
      return bytes === undefined ? undefined : { digest, size: bytes.length, labels: {} };
    },
    readContent(digest, offset = 0, sizeBytes = 0) {
      calls.readContent++;
      const bytes = content.get(digest);
      if (bytes === undefined || failure !== undefined) {
        const err = failure ?? new Error(`not found ${digest}`);
        return new Readable({
          read() {
            this.destroy(err);
          },
        });
      }
      return Readable.from([bytes.subarray(offset, sizeBytes === 0 ? undefined : offset + sizeBytes)]);
    },
    listIngests: async () => twin.ingests,
    async abortIngest(ref) {
      twin.ingests = twin.ingests.filter((status) => status.ref !== ref);
    },
  };
  return twin;
}
