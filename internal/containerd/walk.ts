// Walks an image from its target: index -> manifests -> config + layers, and
// returns the descriptors of everything present in this namespace's content
// store. Absent content (other platforms of an index that were not pulled, or
// blobs already garbage collected) is skipped, along with what it references.
import { MAX_MANIFEST_BYTES } from '../oci/limits.ts';
import { isIndexMediaType, isManifestMediaType, sniffManifestMediaType } from '../oci/mediatype.ts';
import { collect, readBlobBytes } from './blobs.ts';
import type { ContentInfoSource, ContentReader } from './client.ts';
import { field, parseDescriptor, type Descriptor } from './messages.ts';

const MAX_DEPTH = 4;
const MAX_DESCRIPTORS = 10_000;

export interface WalkOptions {
  /** Read manifests from this content directory (gRPC Read when absent or unreadable). */
  contentPath?: string;
}

type DocKind = 'index' | 'manifest' | 'other';

function kindOf(mediaType: string): DocKind {
  if (isIndexMediaType(mediaType)) return 'index';
  if (isManifestMediaType(mediaType)) return 'manifest';
  return 'other';
}

/** The descriptors a manifest or index document references (validated; malformed entries dropped). */
export function childDescriptors(doc: unknown, kind: 'index' | 'manifest'): Descriptor[] {
  const out: Descriptor[] = [];
  const add = (value: unknown): void => {
    try {
      out.push(parseDescriptor(value));
    } catch {
      // not a usable descriptor: skip it
    }
  };
  if (kind === 'index') {
    const manifests = field(doc, 'manifests');
    if (Array.isArray(manifests)) manifests.forEach(add);
  } else {
    add(field(doc, 'config'));
    const layers = field(doc, 'layers');
    if (Array.isArray(layers)) layers.forEach(add);
  }
  return out;
}

/** What a walk asks containerd: content Info, and Read when the content directory cannot be read. */
export type WalkClient = ContentInfoSource & ContentReader;

async function readDocument(client: WalkClient, d: Descriptor, options: WalkOptions): Promise<Buffer | undefined> {
  if (options.contentPath !== undefined) {
    return readBlobBytes({ client, contentPath: options.contentPath }, d.digest, d.size, MAX_MANIFEST_BYTES);
  }
  if (d.size > MAX_MANIFEST_BYTES) return undefined;
  return collect(client.readContent(d.digest), MAX_MANIFEST_BYTES);
}

export async function walkImage(client: WalkClient, target: Descriptor, options: WalkOptions = {}): Promise<Descriptor[]> {
  const found: Descriptor[] = [];
  const seen = new Set<string>();

  const visit = async (d: Descriptor, depth: number): Promise<void> => {
    if (seen.has(d.digest) || seen.size >= MAX_DESCRIPTORS) return;
    seen.add(d.digest);
    const info = await client.contentInfo(d.digest);
    if (info === undefined) return;
    found.push({ mediaType: d.mediaType, digest: d.digest, size: info.size });
    let kind = kindOf(d.mediaType);
    const maybeDocument = kind !== 'other' || (depth === 0 && info.size <= MAX_MANIFEST_BYTES);
    if (!maybeDocument || depth >= MAX_DEPTH) return;
    const bytes = await readDocument(client, { ...d, size: info.size }, options).catch(() => undefined);
    if (bytes === undefined) return;
    if (kind === 'other') {
      // A target of unknown type: judge by its content.
      const sniffed = sniffManifestMediaType(bytes);
      if (sniffed === undefined) return;
      kind = kindOf(sniffed);
    }
    if (kind === 'other') return;
    let doc: unknown;
    try {
      doc = JSON.parse(bytes.toString('utf8'));
    } catch {
      return;
    }
    const children = childDescriptors(doc, kind);
    await Promise.all(children.map((child) => visit(child, depth + 1)));
  };

  await visit(target, 0);
  // Target first, then in discovery order (parallel visits may finish out of order).
  return found.sort((a, b) => (a.digest === target.digest ? -1 : b.digest === target.digest ? 1 : 0));
}

/** Calls fn for every item, at most `limit` at a time, results in order. */
export async function mapConcurrent<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Images walked at once: keeps containerd and the event loop responsive on nodes with many images. */
export const WALK_CONCURRENCY = 4;
