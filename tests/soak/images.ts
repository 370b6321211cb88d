// The soak's images: a pool of generated images pushed to the cluster's
// upstream, of which a window is in use at any time and rotates through the
// pool as the run goes (images come and go, as in a cluster's life). Layers
// below and above the 16 MiB redirect threshold (streamed through the agent,
// and redirected to the holder), base layers shared between images (same
// seed, same position and size: the same blob), and a multi-platform image
// index (the CRI pulls the host's platform). What a pull must have stored,
// digest by digest, is known here.
import { join } from 'node:path';
import type { Cluster } from '../cluster/cluster.ts';
import { generateImage, hostPlatform, type GeneratedImage, type Platform } from '../support/image.ts';

const MiB = 1024 * 1024;

interface ImageSpec {
  repository: string;
  tag: string;
  seed: string;
  /** Payload bytes per layer, bottom first. */
  layers: number[];
  /** Another platform beside the host's: an image index. */
  otherPlatform?: boolean;
}

/** The pool, in rotation order. Seeds shared: `soak-base` images share their first layers. */
const POOL: readonly ImageSpec[] = [
  { repository: 'soak/base', tag: 'v1', seed: 'soak-base', layers: [1 * MiB, 3 * MiB] },
  { repository: 'soak/app', tag: 'v1', seed: 'soak-base', layers: [1 * MiB, 3 * MiB, 20 * MiB] },
  { repository: 'soak/multi', tag: 'v1', seed: 'soak-multi', layers: [2 * MiB, 5 * MiB], otherPlatform: true },
  { repository: 'soak/tiny', tag: 'v1', seed: 'soak-tiny', layers: [256 * 1024] },
  { repository: 'soak/app', tag: 'v2', seed: 'soak-base', layers: [1 * MiB, 3 * MiB, 6 * MiB] },
  { repository: 'soak/solo', tag: 'v1', seed: 'soak-solo', layers: [17 * MiB] },
  { repository: 'soak/big', tag: 'v1', seed: 'soak-base', layers: [1 * MiB, 3 * MiB, 6 * MiB, 40 * MiB] },
  { repository: 'soak/mid', tag: 'v1', seed: 'soak-mid', layers: [10 * MiB, 12 * MiB, 24 * MiB] },
];

/** How many images are in use at once, and how often the window moves on by one. */
export const WINDOW = 5;
export const ROTATE_EVERY_MS = 45_000;

export interface SoakImage {
  /** e.g. soak/app:v1 */
  readonly name: string;
  /** The reference pulled: <upstream host>/<repository>:<tag>. */
  readonly ref: string;
  readonly generated: GeneratedImage;
  /** Every digest the pull must have stored on the node (index, manifest, config, layers), with its size. */
  readonly blobs: ReadonlyArray<{ digest: string; size: number; what: string }>;
  /** The image id the CRI answers: the host platform's config digest. */
  readonly imageId: string;
  readonly bytes: number;
}

function otherPlatform(host: Platform): Platform {
  return host.architecture === 'arm64' ? { os: 'linux', architecture: 'amd64' } : { os: 'linux', architecture: 'arm64' };
}

async function makeImage(cluster: Cluster, spec: ImageSpec, dir: string): Promise<SoakImage> {
  const host = hostPlatform();
  const platforms = spec.otherPlatform === true ? [host, otherPlatform(host)] : [host];
  const generated = await generateImage({ dir, layers: spec.layers, seed: spec.seed, platforms, index: spec.otherPlatform === true });
  await cluster.upstream.push(generated.layoutDir, spec.repository, spec.tag);
  const blobs = [
    ...(generated.indexDigest === undefined ? [] : [{ digest: generated.indexDigest, size: generated.indexSize ?? 0, what: 'index' }]),
    { digest: generated.manifestDigest, size: generated.manifestSize, what: 'manifest' },
    { digest: generated.configDigest, size: generated.configSize, what: 'config' },
    ...generated.layers.map((layer, i) => ({ digest: layer.digest, size: layer.size, what: `layer ${i + 1} (${(layer.size / MiB).toFixed(1)} MiB)` })),
  ];
  return {
    name: `${spec.repository}:${spec.tag}`,
    ref: `${cluster.upstream.host}/${spec.repository}:${spec.tag}`,
    generated,
    blobs,
    imageId: generated.configDigest,
    bytes: blobs.reduce((sum, blob) => sum + blob.size, 0),
  };
}

/** Generates the pool and pushes it to the upstream, in rotation order. */
export async function preparePool(cluster: Cluster): Promise<SoakImage[]> {
  const images: SoakImage[] = [];
  for (const [i, spec] of POOL.entries()) images.push(await makeImage(cluster, spec, join(cluster.dir, 'soak-images', `img-${i}`)));
  return images;
}

/** The images in use `elapsedMs` into the run. */
export function windowAt(pool: readonly SoakImage[], elapsedMs: number): SoakImage[] {
  const start = Math.floor(elapsedMs / ROTATE_EVERY_MS);
  return Array.from({ length: Math.min(WINDOW, pool.length) }, (_, i) => pool[(start + i) % pool.length] as SoakImage);
}
