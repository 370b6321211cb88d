// One attempt at one peer for each kind of question, in the shape the race
// wants: a value on a hit, undefined on a miss (404: the peer does not have
// it, a false positive of its filter), a rejection on anything else. Every
// response body is consumed or destroyed here unless it is handed over.
import { createHash } from 'node:crypto';
import type { Agent } from 'node:http';
import type { PeerSigner } from '../auth/sign.ts';
import { parseDigest, type ParsedDigest } from '../oci/digest.ts';
import { MediaType } from '../oci/mediatype.ts';
import type { ContentRequest } from '../content/source.ts';
import { discard, peerRequest, PeerRequestError, readBody, SizeConflictError, type Candidate, type PeerResponse } from './client.ts';
import type { StreamClient } from './stream-client.ts';
import { VERIFIED_PARAM } from '../pullauth/assertion.ts';

export interface AttemptContext {
  /** Connections for short requests: HEADs and manifests. */
  agent: Agent;
  /**
   * Connections for blob GETs, apart: a blob stream holds its connection for
   * as long as it runs, and short requests must not queue behind streams for
   * a free one (bench:load-peer: with one pool of 32, tag HEADs waited
   * seconds). Their bodies are read into reused buffers (stream-client.ts).
   */
  streams: StreamClient;
  headersTimeoutMs: number;
  /** Signs every peer request (peer auth); undefined: unsigned. */
  sign?: PeerSigner;
}

/** One attempt: the request it is for, the peer asked, the signal that aborts it, and the connections to use. */
export interface Attempt {
  ctx: AttemptContext;
  request: ContentRequest;
  candidate: Candidate;
  signal: AbortSignal;
}

/** What a manifest is checked with: its size limit, and who is told of a body that does not match its digest. */
export interface ManifestCheck {
  maxManifestBytes: number;
  onMismatch(candidate: Candidate): void;
}

const MANIFEST_ACCEPT = [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest].join(', ');

/** The request target of content at a peer: path, registry and, for a verified pull, the assertion. */
export function repositoryPath(request: ContentRequest, kind: 'blobs' | 'manifests', reference: string): string {
  const assertion = request.verified === true ? `&${VERIFIED_PARAM}=1` : '';
  return `/v2/${request.name}/${kind}/${reference}?ns=${encodeURIComponent(request.registry)}${assertion}`;
}

/** The total size S in a Content-Range header: `bytes a-b/S`, or with `*` for the range (a 416). */
function rangeTotal(value: string | undefined): number | undefined {
  const match = value === undefined ? null : /^bytes (?:\d+-\d+|\*)\/(\d{1,16})$/.exec(value);
  return match === null ? undefined : Number(match[1]);
}

function contentLength(res: PeerResponse): number | undefined {
  const value = res.headers['content-length'];
  if (value === undefined || !/^[0-9]{1,16}$/.test(value)) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** One request to the attempt's candidate, with the context's timeout and signature. */
function ask(attempt: Attempt, method: 'GET' | 'HEAD', path: string, headers: Record<string, string> = {}): Promise<PeerResponse> {
  const { ctx, candidate, signal } = attempt;
  const request = { method, path, headers, headersTimeoutMs: ctx.headersTimeoutMs, sign: ctx.sign, signal };
  return method === 'GET' && path.includes('/blobs/') ? ctx.streams.request(candidate, request) : peerRequest(ctx.agent, candidate, request);
}

/** 404: a miss (undefined); any other status than `accepted`: a failure. */
function checkStatus(res: PeerResponse, method: 'GET' | 'HEAD', candidate: Candidate, accepted: readonly number[]): boolean {
  if (res.statusCode !== undefined && accepted.includes(res.statusCode)) return true;
  discard(res, method);
  if (res.statusCode === 404) return false;
  throw new PeerRequestError(`${candidate.name} answered ${res.statusCode}`);
}

function badAnswer(res: PeerResponse, method: 'GET' | 'HEAD', message: string): never {
  discard(res, method);
  throw new PeerRequestError(message);
}

/** HEAD of a blob: its size. */
export async function headBlob(attempt: Attempt, digest: string): Promise<number | undefined> {
  const { candidate } = attempt;
  const res = await ask(attempt, 'HEAD', repositoryPath(attempt.request, 'blobs', digest));
  if (!checkStatus(res, 'HEAD', candidate, [200])) return undefined;
  const size = contentLength(res);
  res.resume();
  if (size === undefined) throw new PeerRequestError(`${candidate.name} sent no valid content-length`);
  return size;
}

/**
 * GET of a blob's bytes from `start` to `end` (inclusive) of `sizeBytes`
 * (undefined: the whole blob, size not known yet). The response is handed over
 * once its headers are checked: the status, the length and the range.
 */
export async function getBlob(
  attempt: Attempt,
  digest: string,
  range: { start: number; end: number; sizeBytes: number } | undefined,
): Promise<PeerResponse | undefined> {
  const { candidate } = attempt;
  const whole = range === undefined || (range.start === 0 && range.end === range.sizeBytes - 1);
  const headers: Record<string, string> = whole || range === undefined ? {} : { range: `bytes=${range.start}-${range.end}` };
  const res = await ask(attempt, 'GET', repositoryPath(attempt.request, 'blobs', digest), headers);
  if (range !== undefined) {
    // The size came from another peer: this one's (in its Content-Range, or the length of a whole answer) must agree.
    const total = res.statusCode === 200 ? contentLength(res) : rangeTotal(res.headers['content-range']);
    if ([200, 206, 416].includes(res.statusCode ?? 0) && total !== undefined && total !== range.sizeBytes) {
      discard(res, 'GET');
      throw new SizeConflictError(`${candidate.name} has ${total} bytes of ${digest}, another peer announced ${range.sizeBytes}`);
    }
  }
  if (!checkStatus(res, 'GET', candidate, whole ? [200] : [206])) return undefined;
  const length = contentLength(res);
  const declared = res.headers['docker-content-digest'];
  if (declared !== undefined && declared !== digest) badAnswer(res, 'GET', `${candidate.name} sent ${String(declared)} for ${digest}`);
  if (length === undefined) badAnswer(res, 'GET', `${candidate.name} sent no valid content-length`);
  if (range !== undefined) {
    const expected = range.end - range.start + 1;
    if (length !== expected) badAnswer(res, 'GET', `${candidate.name} sent ${length} bytes, expected ${expected}`);
    const contentRange = res.headers['content-range'];
    if (!whole && contentRange !== `bytes ${range.start}-${range.end}/${range.sizeBytes}`) {
      badAnswer(res, 'GET', `${candidate.name} sent content-range ${String(contentRange)}`);
    }
  }
  return res;
}

export interface FetchedManifest {
  body: Buffer;
  /** The media type the peer sent, when it names a manifest. */
  mediaType: string | undefined;
}

/** GET of a manifest by digest, whole, checked against its digest. */
export async function getManifest(attempt: Attempt, digest: ParsedDigest, check: ManifestCheck): Promise<FetchedManifest | undefined> {
  const { candidate } = attempt;
  const reference = `${digest.algorithm}:${digest.hex}`;
  const res = await ask(attempt, 'GET', repositoryPath(attempt.request, 'manifests', reference), { accept: MANIFEST_ACCEPT });
  if (!checkStatus(res, 'GET', candidate, [200])) return undefined;
  const length = contentLength(res);
  if (length !== undefined && length > check.maxManifestBytes) badAnswer(res, 'GET', `${candidate.name}: manifest of ${length} bytes is too large`);
  const contentType = res.headers['content-type']?.split(';')[0]?.trim();
  const body = await readBody(res, check.maxManifestBytes, attempt.ctx.headersTimeoutMs, attempt.signal);
  if (createHash(digest.algorithm).update(body).digest('hex') !== digest.hex) {
    check.onMismatch(candidate);
    throw new PeerRequestError(`manifest from ${candidate.name} does not match ${reference}`);
  }
  return { body, mediaType: contentType };
}

export interface TagAnswer {
  digest: string;
}

/** HEAD of a manifest by tag: the digest it points to (Docker-Content-Digest). */
export async function headTag(attempt: Attempt, tag: string): Promise<TagAnswer | undefined> {
  const { candidate } = attempt;
  const res = await ask(attempt, 'HEAD', repositoryPath(attempt.request, 'manifests', tag), { accept: MANIFEST_ACCEPT });
  if (!checkStatus(res, 'HEAD', candidate, [200])) return undefined;
  res.resume();
  const digest = res.headers['docker-content-digest'];
  if (typeof digest !== 'string' || parseDigest(digest) === undefined) throw new PeerRequestError(`${candidate.name} sent no valid docker-content-digest`);
  return { digest };
}
