export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  octetStream: 'application/octet-stream',
} as const;

const INDEXES: ReadonlySet<string> = new Set([MediaType.ociIndex, MediaType.dockerManifestList]);
const MANIFESTS: ReadonlySet<string> = new Set([MediaType.ociManifest, MediaType.dockerManifest]);

export function isIndexMediaType(mediaType: string): boolean {
  return INDEXES.has(mediaType);
}

export function isManifestMediaType(mediaType: string): boolean {
  return MANIFESTS.has(mediaType);
}

/** Index or image manifest: the things served under /manifests/. */
export function isAnyManifestMediaType(mediaType: string): boolean {
  return INDEXES.has(mediaType) || MANIFESTS.has(mediaType);
}

/**
 * Guesses the media type of a manifest document from its JSON, for content
 * whose descriptor was not seen (the `mediaType` field, else its shape).
 */
export function sniffManifestMediaType(body: Buffer): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null) return undefined;
  const record = doc as Record<string, unknown>;
  if (typeof record.mediaType === 'string' && isAnyManifestMediaType(record.mediaType)) return record.mediaType;
  if (Array.isArray(record.manifests)) return MediaType.ociIndex;
  if (typeof record.config === 'object' && Array.isArray(record.layers)) return MediaType.ociManifest;
  return undefined;
}
