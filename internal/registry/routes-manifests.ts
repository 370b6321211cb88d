// GET/HEAD /v2/<name>/manifests/<tag|digest>. Manifests are small: the body is
// read whole (at most MAX_MANIFEST_BYTES, ../oci/limits.ts), checked against
// its digest, and sent with the media type of its descriptor (else sniffed
// from the JSON). Content that is not a manifest, or too large to be one, is
// MANIFEST_UNKNOWN, so containerd falls back to the next host; so is content
// whose bytes do not match its digest or size (a corrupted file, logged as a
// warning): never wrong bytes, and a miss like any other rather than a 500.
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { LocatedContent } from '../content/source.ts';
import { bodyMatchesDigest } from '../oci/digest.ts';
import { MAX_MANIFEST_BYTES } from '../oci/limits.ts';
import { isAnyManifestMediaType, sniffManifestMediaType } from '../oci/mediatype.ts';
import type { Logger } from '../log/logger.ts';
import { NotFoundError } from '../oci/store.ts';
import { RegistryError } from './errors.ts';
import { etagOf, noneMatchHit } from './range.ts';
import { isMirrored, type RepositoryTarget, type RouteDeps } from './policy.ts';

/**
 * Reads a whole stream into one buffer, refusing more than `maxBytes`; the
 * stream is destroyed after. With 'data' events rather than `for await`,
 * whose async iterator costs every manifest GET more objects and turns.
 */
export function readAll(stream: Readable, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let totalBytes = 0;
    let settled = false;
    const settle = (err: Error | undefined): void => {
      if (settled) return;
      settled = true;
      stream.destroy();
      if (err !== undefined) reject(err);
      else resolve(chunks.length === 1 && chunks[0] !== undefined ? chunks[0] : Buffer.concat(chunks, totalBytes));
    };
    stream.on('data', (chunk: unknown) => {
      const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      totalBytes += buf.length;
      if (totalBytes > maxBytes) settle(new Error(`content exceeds ${maxBytes} bytes`));
      else chunks.push(buf);
    });
    stream.once('end', () => settle(undefined));
    stream.once('error', (err: Error) => settle(err));
    // (An Error only when it is one: its stack trace cost 7% of a manifest GET.)
    stream.once('close', () => {
      if (!settled) settle(new Error('stream closed before its end'));
    });
  });
}

async function readManifest(located: LocatedContent, digest: string, log: Logger): Promise<Buffer> {
  let body: Buffer;
  try {
    // Kept whole in memory (the node's verified manifests), else read from the stream.
    body = (await located.readWhole?.()) ?? (await readAll(await located.read(), MAX_MANIFEST_BYTES));
  } catch (err) {
    if (err instanceof NotFoundError) throw new RegistryError('MANIFEST_UNKNOWN', { digest });
    throw err;
  }
  if (body.length !== located.info.size || !bodyMatchesDigest(body, digest)) {
    log.warn({ digest, source: located.source, peer: located.peer }, 'manifest content does not match its digest or size: not served');
    throw new RegistryError('MANIFEST_UNKNOWN', { reason: 'content does not match its digest', digest });
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
    await sendManifest(request, reply, { located, digest, log: deps.log });
  } finally {
    located.release?.();
  }
}

interface FoundManifest {
  located: LocatedContent;
  digest: string;
  log: Logger;
}

async function sendManifest(request: FastifyRequest, reply: FastifyReply, found: FoundManifest): Promise<void> {
  const { located, digest } = found;
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
  const body = await readManifest(located, digest, found.log);
  const mediaType = knownType ?? sniffManifestMediaType(body);
  if (mediaType === undefined) throw new RegistryError('MANIFEST_UNKNOWN', { reason: 'not a manifest', digest });
  reply.header('content-type', mediaType);
  if (request.method === 'HEAD') {
    reply.header('content-length', String(body.length)).send();
    return;
  }
  reply.send(body);
}
