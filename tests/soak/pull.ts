// One pull of the soak's workload, as the kubelet makes it: CRI PullImage on
// the node's containerd (through its hosts.toml: its own agent first, the
// upstream as fallback), retried with backoff after an error until it
// completes or the pull's time bound is spent (the kubelet retries an
// ErrImagePull the same way, with a longer backoff: 10 s doubling to 5 min).
// A completed pull is then checked against what containerd stored: every blob
// of the image (index, manifest, config, layers) read back from the node's
// content store, its size and sha256 against the digest; and the image id the
// CRI answered against the config's digest.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterNode } from '../cluster/cluster.ts';
import { criPull } from '../support/cri.ts';
import type { SoakImage } from './images.ts';

export interface PullAttempt {
  /** ms since the epoch. */
  at: number;
  ms: number;
  /** The CRI error, when the attempt failed. */
  error?: string;
}

export interface PullRecord {
  readonly id: number;
  readonly node: string;
  readonly image: SoakImage;
  /** The pulls started at the same moment share a wave number. */
  readonly wave: number | undefined;
  /** When its pull began (after the removal that came first), ms since the epoch. */
  startedAt: number;
  endedAt: number;
  attempts: PullAttempt[];
  outcome: 'running' | 'completed' | 'failed' | 'corrupt';
  /** failed: why it gave up; corrupt: which blob did not match. */
  problem?: string;
}

export interface PullContext {
  node: ClusterNode;
  /** The pull's time bound (ms): no retry starts after it, and the attempt running then is cut at it. */
  boundMs: number;
}

const FIRST_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 8000;

/** sha256 and size of a file, or undefined when it is missing. */
async function hashFile(path: string): Promise<{ hex: string; size: number } | undefined> {
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
      const buf = chunk as Buffer;
      hash.update(buf);
      size += buf.length;
    }
  } catch (err) {
    if (err instanceof Error && 'code' in err && err.code === 'ENOENT') return undefined;
    throw err;
  }
  return { hex: hash.digest('hex'), size };
}

/** What is wrong with the stored image ('' when every blob is there, whole and matching its digest). */
export async function checkStored(node: ClusterNode, image: SoakImage, imageId: string): Promise<string> {
  if (imageId !== image.imageId) return `the CRI answered image id ${imageId}, expected ${image.imageId}`;
  for (const blob of image.blobs) {
    const hex = blob.digest.slice('sha256:'.length);
    const stored = await hashFile(join(node.containerd.contentDir, 'blobs', 'sha256', hex));
    if (stored === undefined) return `${blob.what} ${blob.digest} is not in the content store`;
    if (stored.size !== blob.size) return `${blob.what} ${blob.digest}: ${stored.size} bytes stored, ${blob.size} expected`;
    if (stored.hex !== hex) return `${blob.what} ${blob.digest}: stored bytes hash to sha256:${stored.hex}`;
  }
  return '';
}

/** The CRI's message without the `CRI PullImage <ref>: ` prefix. */
export function causeOf(message: string, ref: string): string {
  const prefix = `CRI PullImage ${ref}: `;
  return message.startsWith(prefix) ? message.slice(prefix.length) : message;
}

/** Pulls until the pull completes (and is checked) or its bound is spent; fills the record. */
export async function pullWithRetries(ctx: PullContext, record: PullRecord): Promise<void> {
  const { node, boundMs } = ctx;
  const deadline = record.startedAt + boundMs;
  for (let backoff = FIRST_BACKOFF_MS; ; backoff = Math.min(backoff * 2, MAX_BACKOFF_MS)) {
    const at = Date.now();
    try {
      const imageId = await criPull(node.containerd.socket, record.image.ref, { timeoutMs: Math.max(1000, deadline - at) });
      record.attempts.push({ at, ms: Date.now() - at });
      const problem = await checkStored(node, record.image, imageId);
      record.outcome = problem === '' ? 'completed' : 'corrupt';
      if (problem !== '') record.problem = problem;
      return;
    } catch (err) {
      const error = causeOf(err instanceof Error ? err.message : String(err), record.image.ref);
      record.attempts.push({ at, ms: Date.now() - at, error });
    }
    if (Date.now() + backoff >= deadline) {
      record.outcome = 'failed';
      record.problem = `not completed within the bound of ${boundMs / 1000} s`;
      return;
    }
    await sleep(backoff);
  }
}
