// Generated OCI images for tests, the demo and benchmarks.
//
// generateImage() writes an OCI image layout (oci-layout, index.json,
// blobs/sha256/...) holding one image (or, on request, an image index over one
// image per platform). Every layer is a real gzip-compressed ustar archive with
// one file of pseudo-random bytes, so containerd can pull and unpack it. The
// bytes come from AES-128-CTR over zeros keyed by the seed: the same options
// always give the same digests, and generation streams to disk at several
// hundred MB/s (gzip level 0 by default: the data is incompressible anyway).
import { createCipheriv, createHash, randomUUID, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { MediaType } from '../../internal/oci/mediatype.ts';
import { tarHeader, tarTrailer, TAR_BLOCK_BYTES } from './tar.ts';

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface GenerateImageOptions {
  /** Directory of the OCI layout; created if missing. Holds one generated image: index.json is overwritten. */
  dir: string;
  /** Payload bytes of each layer (the size of the one file in its tar), bottom layer first. */
  layers: readonly number[];
  /** Same seed and options, same digests. Default 'mirra'. */
  seed?: string;
  /** One image per platform. Default: the host platform only. */
  platforms?: readonly Platform[];
  /** Wrap the image(s) in an image index. Default: true when more than one platform is given. */
  index?: boolean;
  /** gzip level for the layers, 0 (stored, fastest) to 9. Default 0. */
  gzipLevel?: number;
  /** `org.opencontainers.image.ref.name` of the entry in index.json. Default 'latest'. */
  refName?: string;
}

export interface GeneratedLayer {
  /** Digest of the gzip blob. */
  digest: string;
  /** Size of the gzip blob in bytes. */
  size: number;
  /** sha256 of the uncompressed tar (the config's rootfs.diff_ids entry). */
  diffId: string;
  /** Payload bytes of the file inside the tar. */
  payloadBytes: number;
}

export interface GeneratedManifest {
  platform: Platform;
  manifestDigest: string;
  manifestSize: number;
  configDigest: string;
  configSize: number;
  layers: GeneratedLayer[];
  /** manifest + config + layer sizes in bytes. */
  totalBytes: number;
}

export interface GeneratedImage {
  layoutDir: string;
  refName: string;
  /** What index.json points at: the index digest if there is one, else the manifest digest. */
  rootDigest: string;
  rootMediaType: string;
  indexDigest?: string;
  indexSize?: number;
  /** One image manifest per platform; the fields below repeat images[0]. */
  images: GeneratedManifest[];
  platform: Platform;
  manifestDigest: string;
  manifestSize: number;
  configDigest: string;
  configSize: number;
  layers: GeneratedLayer[];
  /** Sum of the sizes of all blobs of the image: index (if any) + manifests + configs + layers. */
  totalBytes: number;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

const ARCHITECTURES: Record<string, string> = {
  x64: 'amd64',
  arm64: 'arm64',
  arm: 'arm',
  ia32: '386',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
};

/** The OCI platform of this machine (process.arch mapped to GOARCH names). */
export function hostPlatform(): Platform {
  return { architecture: ARCHITECTURES[process.arch] ?? process.arch, os: 'linux' };
}

export function platformString(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter((part) => part !== undefined).join('/');
}

const CHUNK_BYTES = 1 << 20;
const MAX_TAR_FILE_BYTES = 8 ** 11 - 1;

export async function generateImage(options: GenerateImageOptions): Promise<GeneratedImage> {
  const platforms = options.platforms ?? [hostPlatform()];
  if (platforms.length === 0) throw new Error('generateImage: platforms must not be empty');
  const gzipLevel = options.gzipLevel ?? 0;
  if (!Number.isInteger(gzipLevel) || gzipLevel < 0 || gzipLevel > 9) throw new Error(`generateImage: bad gzipLevel ${gzipLevel}`);
  for (const bytes of options.layers) {
    if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_TAR_FILE_BYTES) throw new Error(`generateImage: bad layer size ${bytes}`);
  }
  const wantIndex = options.index ?? platforms.length > 1;
  if (!wantIndex && platforms.length > 1) throw new Error('generateImage: several platforms need index: true');
  const seed = options.seed ?? 'mirra';
  const refName = options.refName ?? 'latest';
  const blobsDir = join(options.dir, 'blobs', 'sha256');
  await mkdir(blobsDir, { recursive: true });

  const images: GeneratedManifest[] = [];
  for (const platform of platforms) {
    images.push(await writeImageManifest({ blobsDir, gzipLevel }, options.layers, seed, platform));
  }
  const first = images[0];
  if (first === undefined) throw new Error('generateImage: no image written');

  let root: Descriptor = { mediaType: MediaType.ociManifest, digest: first.manifestDigest, size: first.manifestSize };
  let totalBytes = images.reduce((sum, image) => sum + image.totalBytes, 0);
  if (wantIndex) {
    const index = {
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: images.map((image) => ({
        mediaType: MediaType.ociManifest,
        digest: image.manifestDigest,
        size: image.manifestSize,
        platform: image.platform,
      })),
    };
    root = await writeJsonBlob(blobsDir, MediaType.ociIndex, index);
    totalBytes += root.size;
  }
  await writeFile(join(options.dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const layoutIndex = {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: [{ ...root, annotations: { 'org.opencontainers.image.ref.name': refName } }],
  };
  await writeFile(join(options.dir, 'index.json'), JSON.stringify(layoutIndex));
  return {
    layoutDir: options.dir,
    refName,
    rootDigest: root.digest,
    rootMediaType: root.mediaType,
    ...(wantIndex ? { indexDigest: root.digest, indexSize: root.size } : {}),
    images,
    platform: first.platform,
    manifestDigest: first.manifestDigest,
    manifestSize: first.manifestSize,
    configDigest: first.configDigest,
    configSize: first.configSize,
    layers: first.layers,
    totalBytes,
  };
}

/** Where blobs are written (the layout's blobs/sha256) and how hard layers are compressed. */
interface BlobsOut {
  blobsDir: string;
  gzipLevel: number;
}

async function writeImageManifest(out: BlobsOut, layerSizes: readonly number[], seed: string, platform: Platform): Promise<GeneratedManifest> {
  const { blobsDir } = out;
  const layers: GeneratedLayer[] = [];
  for (const [index, payloadBytes] of layerSizes.entries()) {
    const key = createHash('sha256')
      .update(`${seed}\0${platformString(platform)}\0${index}`)
      .digest();
    layers.push(await writeLayer(out, payloadBytes, key, `layer-${index}.bin`));
  }
  const config = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant !== undefined ? { variant: platform.variant } : {}),
    created: '2024-01-01T00:00:00Z',
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
    rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.diffId) },
    history: layers.map((layer) => ({ created: '2024-01-01T00:00:00Z', created_by: `mirra generated ${layer.payloadBytes} bytes` })),
  };
  const configDescriptor = await writeJsonBlob(blobsDir, MediaType.ociConfig, config);
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: configDescriptor,
    layers: layers.map((layer) => ({ mediaType: MediaType.ociLayerGzip, digest: layer.digest, size: layer.size })),
    annotations: { 'org.opencontainers.image.description': `mirra test image, seed ${JSON.stringify(seed)}` },
  };
  const manifestDescriptor = await writeJsonBlob(blobsDir, MediaType.ociManifest, manifest);
  const layerBytes = layers.reduce((sum, layer) => sum + layer.size, 0);
  return {
    platform,
    manifestDigest: manifestDescriptor.digest,
    manifestSize: manifestDescriptor.size,
    configDigest: configDescriptor.digest,
    configSize: configDescriptor.size,
    layers,
    totalBytes: manifestDescriptor.size + configDescriptor.size + layerBytes,
  };
}

/** Writes a JSON document as a blob and returns its descriptor. */
async function writeJsonBlob(blobsDir: string, mediaType: string, document: unknown): Promise<Descriptor> {
  const bytes = Buffer.from(JSON.stringify(document));
  const hex = createHash('sha256').update(bytes).digest('hex');
  await writeFile(join(blobsDir, hex), bytes);
  return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
}

/** The uncompressed tar of one layer, hashed into `diffHash` as it is produced. */
async function* layerTar(payloadBytes: number, key: Buffer, fileName: string, diffHash: Hash): AsyncGenerator<Buffer> {
  const emit = (chunk: Buffer): Buffer => {
    diffHash.update(chunk);
    return chunk;
  };
  yield emit(tarHeader(fileName, payloadBytes));
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  const zeros = Buffer.alloc(CHUNK_BYTES);
  let remaining = payloadBytes;
  while (remaining > 0) {
    const bytes = Math.min(remaining, CHUNK_BYTES);
    yield emit(cipher.update(bytes === CHUNK_BYTES ? zeros : zeros.subarray(0, bytes)));
    remaining -= bytes;
  }
  const padBytes = (TAR_BLOCK_BYTES - (payloadBytes % TAR_BLOCK_BYTES)) % TAR_BLOCK_BYTES;
  yield emit(Buffer.concat([Buffer.alloc(padBytes), tarTrailer()]));
}

async function writeLayer({ blobsDir, gzipLevel }: BlobsOut, payloadBytes: number, key: Buffer, fileName: string): Promise<GeneratedLayer> {
  const diffHash = createHash('sha256');
  const blobHash = createHash('sha256');
  let size = 0;
  const tmpPath = join(blobsDir, `.tmp-${randomUUID()}`);
  try {
    await pipeline(
      layerTar(payloadBytes, key, fileName, diffHash),
      createGzip({ level: gzipLevel, chunkSize: CHUNK_BYTES }),
      async function* hashBlob(source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          blobHash.update(chunk);
          size += chunk.length;
          yield chunk;
        }
      },
      createWriteStream(tmpPath, { highWaterMark: CHUNK_BYTES }),
    );
    const hex = blobHash.digest('hex');
    await rename(tmpPath, join(blobsDir, hex));
    return { digest: `sha256:${hex}`, size, diffId: `sha256:${diffHash.digest('hex')}`, payloadBytes };
  } catch (err) {
    await rm(tmpPath, { force: true });
    throw err;
  }
}
