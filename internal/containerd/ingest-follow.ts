// A blob's bytes read from containerd's ingest while containerd is still
// writing them (a cold rollout: this node fetches a layer from the upstream
// and other nodes stream it from here at the same time, docs/ARCHITECTURE.md
// "Cold rollouts").
//
// containerd's local content store keeps an ingest in
// <contentPath>/ingest/<sha256 hex of its backing ref>/ with `data` (the bytes
// so far, appended in order), `total` (the expected size) and `ref` (the
// backing ref); on commit it renames `data` to blobs/<algorithm>/<hex>. The
// backing ref is not the ref clients see (ListStatuses): containerd's
// namespaced metadata store writes `<namespace>/<sequence id>/<ref>`, the id
// from its database (core/metadata/content.go, since 1.0), so the directory
// is found by reading the `ref` files. An open file descriptor follows
// the inode through the rename, so one descriptor reads the blob from its first
// byte to its last whether it is committed meanwhile or not. The reader waits
// at the end of what is there (polling, from 5 ms up to 50 ms) until the next
// bytes arrive; a file that does not grow for `stallMs` ends the stream with an
// error (the fetch stalled, was aborted or containerd stopped), unless the
// caller knows the fetch is alive (`live`: its download waits for a slot):
// the serving agent then cuts its response short, and the follower resumes
// elsewhere.
import { open, readdir, readFile, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { isNotFound } from '../fs/not-found.ts';
import { Readable } from 'node:stream';
import { READ_CHUNK_BYTES } from './blobs.ts';

const MIN_POLL_MS = 5;
const MAX_POLL_MS = 50;

export class IngestStalledError extends Error {
  override readonly name = 'IngestStalledError';
}

/** Whether a backing ref (an ingest's `ref` file) is the namespace's ingest `ref`: `<namespace>/<id>/<ref>`. */
export function isBackingRefOf(backing: string, namespace: string, ref: string): boolean {
  const prefix = `${namespace}/`;
  if (!backing.startsWith(prefix) || !backing.endsWith(`/${ref}`)) return false;
  return /^\d+$/.test(backing.slice(prefix.length, backing.length - ref.length - 1));
}

/**
 * The `data` file of the namespace's ingest `ref`, or undefined when there is
 * none. Directory names are read from the directory itself (64 hex digits
 * each), never built from input.
 */
export async function findIngestData(contentPath: string, namespace: string, ref: string): Promise<string | undefined> {
  const base = resolve(contentPath, 'ingest');
  let names: string[];
  try {
    names = await readdir(base);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
  for (const name of names) {
    if (!/^[0-9a-f]{64}$/.test(name)) continue;
    const backing = await readFile(join(base, name, 'ref'), 'utf8').catch(() => '');
    if (isBackingRefOf(backing, namespace, ref)) return join(base, name, 'data');
  }
  return undefined;
}

export interface FollowOptions {
  /** The ingest's data file (findIngestData). */
  path: string;
  /** First and last byte (inclusive) to deliver; `end` is below the ingest's expected total. */
  start: number;
  end: number;
  /** The file not growing for this long ends the stream with IngestStalledError, unless `live` says the fetch goes on. */
  stallMs: number;
  /** Whether the fetch writing the file is still alive (e.g. waiting for a download slot); default: no such knowledge. */
  live?(): boolean;
  /** Told every chunk delivered (bytes), for metrics. */
  onBytes?(bytes: number): void;
}

/** Where one follower is: one object, changed only by the functions below. */
interface FollowState {
  readonly options: FollowOptions;
  readonly handle: FileHandle;
  readonly out: Readable;
  position: number;
  lastGrowthMs: number;
  pollMs: number;
  pumping: boolean;
  timer: NodeJS.Timeout | undefined;
  closed: boolean;
}

/**
 * Opens the ingest's data file (rejects with ENOENT when there is none: the
 * blob was committed or dropped meanwhile) and returns a stream of bytes
 * `start`..`end` as they are written.
 */
export async function followIngest(options: FollowOptions): Promise<Readable> {
  const handle = await open(options.path, 'r');
  const state: FollowState = {
    options,
    handle,
    out: new Readable({
      highWaterMark: READ_CHUNK_BYTES,
      read: () => void pump(state),
      destroy(err, callback) {
        state.closed = true;
        clearTimeout(state.timer);
        handle.close().then(
          () => callback(err),
          () => callback(err),
        );
      },
    }),
    position: options.start,
    lastGrowthMs: Date.now(),
    pollMs: MIN_POLL_MS,
    pumping: false,
    timer: undefined,
    closed: false,
  };
  return state.out;
}

/** Reads what is there until the consumer is full or the file's end is reached (then waits for more). */
async function pump(s: FollowState): Promise<void> {
  if (s.pumping || s.closed) return;
  s.pumping = true;
  try {
    for (;;) {
      const want = Math.min(READ_CHUNK_BYTES, s.options.end - s.position + 1);
      if (want <= 0) {
        s.out.push(null);
        return;
      }
      // What is written beyond the position, so that each buffer is as big as its bytes (a 1 MiB one per poll would pile up).
      const { size } = await s.handle.stat();
      if (s.closed) return;
      const available = Math.min(want, size - s.position);
      const buffer = Buffer.allocUnsafe(Math.max(0, available));
      const { bytesRead } = available > 0 ? await s.handle.read(buffer, 0, available, s.position) : { bytesRead: 0 };
      if (s.closed) return;
      if (bytesRead === 0) {
        waitForGrowth(s);
        return;
      }
      s.position += bytesRead;
      s.lastGrowthMs = Date.now();
      s.pollMs = MIN_POLL_MS;
      s.options.onBytes?.(bytesRead);
      if (!s.out.push(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead))) return;
    }
  } catch (err) {
    s.out.destroy(err instanceof Error ? err : new Error(String(err)));
  } finally {
    s.pumping = false;
  }
}

/** At the end of what containerd wrote so far: look again soon, or give up once it has not grown for stallMs. */
function waitForGrowth(s: FollowState): void {
  const idleMs = Date.now() - s.lastGrowthMs;
  if (idleMs >= s.options.stallMs && s.options.live?.() !== true) {
    s.out.destroy(new IngestStalledError(`ingest did not grow for ${idleMs} ms at byte ${s.position}`));
    return;
  }
  s.timer = setTimeout(() => void pump(s), s.pollMs);
  s.pollMs = Math.min(MAX_POLL_MS, s.pollMs * 2);
}
