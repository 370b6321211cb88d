// GET/HEAD /v2/<name>/blobs/<digest>: streamed from the source, never
// buffered, with single-range support (range.ts; not for content that can be
// checked only whole, a peer's: that is always sent whole) and If-None-Match. The reply
// is hijacked once the first bytes are there and the body goes straight to the
// socket: from the content's file through reused buffers when the source
// offers one (send-file.ts), else from its Readable (send-stream.ts). Blobs are always application/octet-stream, as CNCF
// distribution serves them (containerd ignores the type).
import type { OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { LocatedContent } from '../content/source.ts';
import { NotFoundError, type ByteRange } from '../oci/store.ts';
import { isPeerRequest } from '../auth/peer-request.ts';
import { RegistryError } from './errors.ts';
import { clip } from './path.ts';
import { isMirrored, type RepositoryTarget, type RouteDeps } from './policy.ts';
import { contentRange, etagOf, ifRangeAllows, noneMatchHit, parseRange, unsatisfiedRange } from './range.ts';
import { streamFile } from './send-file.ts';
import { streamBody, type StreamOptions, type StreamOutcome } from './send-stream.ts';

async function openBlob(located: LocatedContent, digest: string, range: ByteRange | undefined): Promise<Readable> {
  try {
    return await located.read(range);
  } catch (err) {
    if (err instanceof NotFoundError) throw new RegistryError('BLOB_UNKNOWN', { digest });
    throw err;
  }
}

/** Turns the connection's idle timeout off until resume() (idempotent) puts it back. */
function pauseIdleTimeout(request: FastifyRequest): { resume(): void } {
  const socket = request.raw.socket;
  const timeoutMs = socket.timeout;
  if (timeoutMs === undefined || timeoutMs === 0) return { resume() {} };
  socket.setTimeout(0);
  let resumed = false;
  return {
    resume() {
      if (resumed) return;
      resumed = true;
      if (!socket.destroyed) socket.setTimeout(timeoutMs);
    },
  };
}

function isNotFound(err: unknown): boolean {
  return err instanceof NotFoundError || (err instanceof Error && 'code' in err && err.code === 'ENOENT');
}

/** The blob a request asks for. */
export interface BlobRequest {
  readonly target: RepositoryTarget;
  readonly digest: string;
}

/** A blob the source found. */
interface FoundBlob {
  readonly located: LocatedContent;
  readonly digest: string;
}

export async function serveBlob(deps: RouteDeps, request: FastifyRequest, reply: FastifyReply, blob: BlobRequest): Promise<void> {
  const { target, digest } = blob;
  if (!isMirrored(deps.policy, target.registry)) {
    throw new RegistryError('BLOB_UNKNOWN', { reason: 'registry not mirrored', registry: target.registry });
  }
  const method = request.method === 'HEAD' ? 'HEAD' : 'GET';
  // containerd follows redirects; a whole-blob GET of its may be sent to the holder's agent (LocatedContent.redirect).
  const redirectable = method === 'GET' && request.headers.range === undefined && !isPeerRequest(request.headers);
  const located = await deps.source.locate({ ...target, kind: 'blob', method, redirectable }, digest);
  if (located === undefined) throw new RegistryError('BLOB_UNKNOWN', { digest });
  try {
    await sendBlob(deps, request, reply, { located, digest });
  } finally {
    // Whatever was not read (HEAD, 304, a Range, an error) is let go: a peer's open response.
    located.release?.();
  }
}

/** Logs the blob's source and sets its headers; answers 304 and HEAD (returns true), else leaves the body to the caller. */
function answeredWithoutBody(request: FastifyRequest, reply: FastifyReply, blob: FoundBlob): boolean {
  const { located, digest } = blob;
  const log = request.accessLog;
  if (log) {
    log.source = located.source;
    log.peer = located.peer;
  }
  const etag = etagOf(digest);
  reply
    .header('docker-content-digest', digest)
    .header('etag', etag)
    .header('accept-ranges', located.wholeOnly === true ? 'none' : 'bytes')
    .header('content-type', 'application/octet-stream');
  if (noneMatchHit(request.headers['if-none-match'], etag)) {
    reply.code(304).send();
    return true;
  }
  if (request.method === 'HEAD') {
    reply.header('content-length', String(located.info.size)).send();
    return true;
  }
  return false;
}

/** The byte range to send (undefined: all of it); RANGE_INVALID when the Range cannot be satisfied. */
function requestedRange(request: FastifyRequest, blob: FoundBlob): ByteRange | undefined {
  const { located, digest } = blob;
  const sizeBytes = located.info.size;
  const ifRange = request.headers['if-range'];
  const decision =
    located.wholeOnly !== true && ifRangeAllows(Array.isArray(ifRange) ? ifRange[0] : ifRange, etagOf(digest))
      ? parseRange(request.headers.range, sizeBytes)
      : { kind: 'full' as const };
  if (decision.kind === 'unsatisfiable') {
    throw new RegistryError(
      'RANGE_INVALID',
      { range: clip(request.headers.range ?? '', 256), size: sizeBytes },
      {
        'content-range': unsatisfiedRange(sizeBytes),
      },
    );
  }
  return decision.kind === 'partial' ? decision.range : undefined;
}

/** A 307 to the holder's agent (a signed URL): containerd fetches the bytes from there, this agent moves none of them. */
function redirected(request: FastifyRequest, reply: FastifyReply, blob: FoundBlob): boolean {
  const { redirect } = blob.located;
  if (redirect === undefined || request.method !== 'GET') return false;
  redirect.taken();
  reply.code(307).header('location', redirect.location).header('docker-content-digest', blob.digest).header('content-length', '0').send();
  return true;
}

async function sendBlob(deps: RouteDeps, request: FastifyRequest, reply: FastifyReply, blob: FoundBlob): Promise<void> {
  if (answeredWithoutBody(request, reply, blob) || redirected(request, reply, blob)) return;
  const { located, digest } = blob;
  const log = request.accessLog;
  const sizeBytes = located.info.size;
  const range = requestedRange(request, blob);
  const lengthBytes = range === undefined ? sizeBytes : range.end - range.start + 1;
  const status = range === undefined ? 200 : 206;
  reply.header('content-length', String(lengthBytes));
  if (range !== undefined) reply.header('content-range', contentRange(range, sizeBytes));

  // A peer's blob may be held back until its digest is checked: nothing moves
  // on the client's connection meanwhile, which the idle timeout must not cut
  // (the peer source has its own stall limits). It counts again from the first byte.
  // A blob still being fetched may take long to start, likewise.
  const idle = located.peer === undefined && located.headersFirst !== true ? undefined : pauseIdleTimeout(request);
  const options: StreamOptions = {
    expectedBytes: lengthBytes,
    writeHead: () => {
      reply.hijack();
      reply.raw.writeHead(status, reply.getHeaders() as OutgoingHttpHeaders);
    },
    headFirst: located.headersFirst === true && located.openFile === undefined,
    onFirstChunk: () => idle?.resume(),
    counter: log ?? undefined,
    written: located.giveBack === undefined ? undefined : (chunk) => located.giveBack?.(chunk),
  };
  const file = located.openFile === undefined ? undefined : await located.openFile();
  let outcome: StreamOutcome;
  try {
    outcome =
      file === undefined
        ? await streamBody(reply.raw, await openBlob(located, digest, range), options)
        : await streamFile(reply.raw, file, range?.start ?? 0, { ...options, buffers: deps.fileBuffers, sendfile: deps.sendfile });
  } catch (err) {
    // Nothing sent yet: answer with a clean error. A peer's failure (wrong
    // bytes, a cut) means "not here" too: containerd goes to its next host.
    if (isNotFound(err) || located.peer !== undefined) throw new RegistryError('BLOB_UNKNOWN', { digest });
    throw err;
  } finally {
    idle?.resume();
  }
  if (outcome.kind === 'client-gone' && !reply.sent) reply.hijack();
  if (outcome.kind === 'failed') {
    deps.log.warn({ err: outcome.error, digest, source: located.source, bytesSent: outcome.bytesSent }, 'blob stream failed mid-body');
  }
}
