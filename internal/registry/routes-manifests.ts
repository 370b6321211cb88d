// GET/HEAD /v2/<name>/manifests/<tag|digest>. Manifests are small: the body is
// read whole (at most MAX_MANIFEST_BYTES, ../oci/limits.ts), checked against
// its digest, and sent with the media type of its descriptor (else sniffed
// from the JSON). Content that is not a manifest, or too large to be one, is
// MANIFEST_UNKNOWN, so containerd falls back to the next host.
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { LocatedContent } from '../content/source.ts';
import { parseDigest } from '../oci/digest.ts';
import { MAX_MANIFEST_BYTES } from '../oci/limits.ts';
import { isAnyManifestMediaType, sniffManifestMediaType } from '../oci/mediatype.ts';
import { NotFoundError } from '../oci/store.ts';
import { RegistryError } from './errors.ts';
import { etagOf, noneMatchHit } from './range.ts';
import { isMirrored, type RepositoryTarget, type RouteDeps } from './policy.ts';

/** Reads a whole stream into one buffer, refusing more than `maxBytes`. */
export async function readAll(stream: Readable, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let totalBytes = 0;
  try {
    for await (const chunk of stream) {
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      totalBytes += buf.length;
      if (totalBytes > maxBytes) throw new Error(`content exceeds ${maxBytes} bytes`);
      chunks.push(buf);
    }
  } finally {
    stream.destroy();
  }
  return chunks.length === 1 && chunks[0] !== undefined ? chunks[0] : Buffer.concat(chunks, totalBytes);
}

function matchesDigest(body: Buffer, digest: string): boolean {
  const parsed = parseDigest(digest);
  if (parsed === undefined) return false;
  return createHash(parsed.algorithm).update(body).digest('hex') === parsed.hex;
}

async function readManifest(located: LocatedContent, digest: string): Promise<Buffer> {
  let stream: Readable;
  try {
    stream = await located.read();
  } catch (err) {
    if (err instanceof NotFoundError) throw new RegistryError('MANIFEST_UNKNOWN', { digest });
    throw err;
  }
  const body = await readAll(stream, MAX_MANIFEST_BYTES);
  if (body.length !== located.info.size || !matchesDigest(body, digest)) {
    throw new Error(`content of ${digest} does not match its digest or size`);
  }
  return body;
}

/** The manifest a request asks for: by digest, or by tag (`reference`). */
export interface ManifestRequest {
  readonly target: RepositoryTarget;
  readonly reference: string;
  readonly byDigest: boolean;
}

export async function serveManifest(deps: RouteDeps, request: FastifyRequest, reply: FastifyReply, manifest: ManifestRequest): Promise<void> {
  const { target, reference, byDigest } = manifest;
  const { policy, source } = deps;
  if (!isMirrored(policy, target.registry)) {
    throw new RegistryError('MANIFEST_UNKNOWN', { reason: 'registry not mirrored', registry: target.registry });
  }
  let digest = reference;
  if (!byDigest) {
    if (!policy.resolveTags) throw new RegistryError('MANIFEST_UNKNOWN', { reason: 'tag resolution disabled', tag: reference });
    const resolved = await source.resolveTag(target, reference);
    if (resolved === undefined) throw new RegistryError('MANIFEST_UNKNOWN', { tag: reference });
    digest = resolved.digest;
  }
  const method = request.method === 'HEAD' ? 'HEAD' : 'GET';
  const located = await source.locate({ ...target, kind: 'manifest', method }, digest);
  if (located === undefined) throw new RegistryError('MANIFEST_UNKNOWN', { digest });
  try {
    await sendManifest(request, reply, located, digest);
  } finally {
    located.release?.();
  }
}

async function sendManifest(request: FastifyRequest, reply: FastifyReply, located: LocatedContent, digest: string): Promise<void> {
  if (request.accessLog) {
    request.accessLog.source = located.source;
    request.accessLog.peer = located.peer;
  }
  if (located.info.size > MAX_MANIFEST_BYTES) {
    throw new RegistryError('MANIFEST_UNKNOWN', { reason: 'too large for a manifest', digest });
  }
  const etag = etagOf(digest);
  reply.header('docker-content-digest', digest).header('etag', etag);
  if (noneMatchHit(request.headers['if-none-match'], etag)) {
    reply.code(304).send();
    return;
  }

  const declared = located.info.mediaType;
  const knownType = declared !== undefined && isAnyManifestMediaType(declared) ? declared : undefined;
  if (knownType !== undefined && request.method === 'HEAD') {
    reply.header('content-type', knownType).header('content-length', String(located.info.size)).send();
    return;
  }
  if (knownType === undefined && declared !== undefined && declared !== 'application/octet-stream') {
    throw new RegistryError('MANIFEST_UNKNOWN', { reason: 'not a manifest', digest, mediaType: declared });
  }
  const body = await readManifest(located, digest);
  const mediaType = knownType ?? sniffManifestMediaType(body);
  if (mediaType === undefined) throw new RegistryError('MANIFEST_UNKNOWN', { reason: 'not a manifest', digest });
  reply.header('content-type', mediaType);
  if (request.method === 'HEAD') {
    reply.header('content-length', String(body.length)).send();
    return;
  }
  reply.send(body);
}
