// A blob's bytes from peers as one Readable, with backpressure, that survives
// a peer failing mid-stream: when the current peer's body errors, ends short
// or goes idle, the bytes from the first one not yet received are asked from
// the next candidate (`open(offset, rest)`, a ranged GET) and the stream goes
// on seamlessly. When the stream covers the whole blob, its digest is checked
// as the bytes pass, and the last chunk is held back until the check is done:
// on a mismatch the stream errors without ever delivering the full length, so
// the client never sees a complete-looking wrong body. With `holdAll`, every
// byte is held back until the check is done: containerd keeps what it got of
// a body that broke off and asks for the rest with a Range (from us or
// upstream), so a wrong byte that went out would fail its commit; held back,
// wrong bytes are never sent, and the whole blob is asked again from the
// candidates not tried yet. A failure before any byte was delivered is a
// NotFoundError: the registry can still answer 404, and containerd goes
// upstream.
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Logger } from '../log/logger.ts';
import type { ParsedDigest } from '../oci/digest.ts';
import { NotFoundError } from '../oci/store.ts';
import type { Candidate, PeerResponse } from './client.ts';
import type { RaceWinner } from './race.ts';

/** Opens the bytes from `offset` to the stream's end on one of `candidates`. */
export type RangeOpener = (offset: number, candidates: readonly Candidate[], signal: AbortSignal) => Promise<RaceWinner<PeerResponse> | undefined>;

export interface ResumingStreamOptions {
  digest: string;
  /** The first peer's response, delivering from `start`. */
  first: RaceWinner<PeerResponse>;
  /** First and last byte (inclusive) of what the stream delivers. */
  start: number;
  end: number;
  /** Checked when the stream covers the whole blob (then `start` is 0 and `end` its last byte). */
  verify: ParsedDigest | undefined;
  /** With `verify`: hold every byte back until the digest is checked (memory: the whole blob). */
  holdAll?: boolean;
  open: RangeOpener;
  /** A peer that sends nothing for this long (while the stream wants data) is given up on. */
  idleTimeoutMs: number;
  log: Logger;
  onResume?(from: Candidate, to: Candidate, offset: number): void;
  /** A peer failed mid-body: error, short or idle body, too many bytes. */
  onPeerFailure?(peer: Candidate, err: Error): void;
  /** The bytes did not match the digest; `peers` sent them (more than one after a resume). */
  onMismatch?(peers: readonly Candidate[]): void;
  /**
   * After a mismatch, some of the wrong bytes had already been delivered (a
   * streamed blob): the client holds them, and a client that resumes with a
   * Range (containerd) would complete a wrong blob from them.
   */
  onWrongBytesDelivered?(): void;
  /** Everything was delivered (and verified, when asked); `peer` sent the last bytes. */
  onComplete?(peer: Candidate): void;
  /** The first bytes came from a peer (once per stream). */
  onFirstBytes?(): void;
}

/**
 * Bytes buffered between the peer's socket and the client's before the peer
 * is paused: 256 KiB x --max-peer-streams (32) = 8 MiB at most. bench:load-peer
 * with the serving peer on sendfile (its clients slower than the peer, so
 * every stream's buffer full): node-2's peak 161-166 MiB with 1 MiB (external
 * memory 40-59 MiB), 139-142 MiB with 256 KiB (28-31 MiB). One streamed peer
 * blob (256 MiB, redirects off, 6 GETs x 2): median 490 and 465 MB/s, within
 * this machine's noise. (The response's own 256 KiB, stream-client.ts, at
 * 64 KiB: 5 MiB less at the peak, 10% less MB/s for one stream; kept.)
 */
const STREAM_BUFFER_BYTES = 256 * 1024;

/**
 * The error a stream of `digest` ends with: as it is once some of its bytes
 * went out, else a NotFoundError caused by it, so that the registry can still
 * answer 404 and containerd go elsewhere.
 */
export function failureOf(err: Error, digest: string, deliveredAny: boolean): Error {
  if (deliveredAny || err instanceof NotFoundError) return err;
  const notFound = new NotFoundError(digest);
  notFound.cause = err;
  return notFound;
}

export class DigestMismatchError extends Error {
  override readonly name = 'DigestMismatchError';
}

/** Where a stream is: one object, changed only by the functions below. */
interface ResumeState {
  readonly options: ResumingStreamOptions;
  readonly out: Readable;
  /** With `verify`: every byte held back until the digest is checked. */
  readonly holdAll: boolean;
  readonly abort: AbortController;
  hash: Hash | undefined;
  /** The next byte to receive. */
  offset: number;
  /** The response being read, undefined between peers. */
  current: PeerResponse | undefined;
  peer: Candidate;
  rest: readonly Candidate[];
  /** Last chunk, held back until the digest is checked (verifying streams only). */
  held: Buffer | undefined;
  /** Every chunk, held back until the digest is checked (holdAll). */
  heldAll: Buffer[];
  /** The peers whose bytes are in the hash. */
  contributors: Candidate[];
  idleTimer: NodeJS.Timeout | undefined;
  closed: boolean;
  deliveredAny: boolean;
}

export function createResumingStream(options: ResumingStreamOptions): Readable {
  const verify = options.verify;
  const state: ResumeState = {
    options,
    out: new Readable({
      highWaterMark: STREAM_BUFFER_BYTES,
      read: () => wanted(state),
      destroy(err, callback) {
        destroyed(state);
        callback(err);
      },
    }),
    holdAll: verify !== undefined && options.holdAll === true,
    abort: new AbortController(),
    hash: verify === undefined ? undefined : createHash(verify.algorithm),
    offset: options.start,
    current: undefined,
    peer: options.first.candidate,
    rest: options.first.rest,
    held: undefined,
    heldAll: [],
    contributors: [options.first.candidate],
    idleTimer: undefined,
    closed: false,
    deliveredAny: false,
  };
  attach(state, options.first.value);
  return state.out;
}

/** The client wants more: a peer paused for backpressure goes on. */
function wanted(s: ResumeState): void {
  if (s.current !== undefined && s.current.isPaused()) {
    s.current.resume();
    armIdle(s);
  }
}

/** The stream was destroyed (by the client, or on an error): nothing more is asked or read. */
function destroyed(s: ResumeState): void {
  s.closed = true;
  clearTimeout(s.idleTimer);
  s.abort.abort();
  detach(s);
}

function armIdle(s: ResumeState): void {
  clearTimeout(s.idleTimer);
  const res = s.current;
  s.idleTimer = setTimeout(() => {
    if (res === s.current) fail(s, new Error(`peer sent nothing for ${s.options.idleTimeoutMs} ms`));
  }, s.options.idleTimeoutMs);
}

function detach(s: ResumeState): void {
  const res = s.current;
  s.current = undefined;
  if (res === undefined) return;
  res.removeAllListeners('data');
  res.removeAllListeners('end');
  res.removeAllListeners('close');
  // Keep an error listener: a late error from a destroyed body must not go unheard.
  res.on('error', () => {});
  res.destroy();
}

function deliver(s: ResumeState, chunk: Buffer): boolean {
  s.deliveredAny = true;
  return s.out.push(chunk);
}

function push(s: ResumeState, chunk: Buffer): boolean {
  if (s.hash === undefined) return deliver(s, chunk);
  s.hash.update(chunk);
  if (s.holdAll) {
    s.heldAll.push(chunk);
    return true;
  }
  const previous = s.held;
  s.held = chunk;
  return previous === undefined ? true : deliver(s, previous);
}

/** Ends the stream with an error; before any byte went out, as not found. */
function abandon(s: ResumeState, err: Error): void {
  s.out.destroy(failureOf(err, s.options.digest, s.deliveredAny));
}

function complete(s: ResumeState): void {
  clearTimeout(s.idleTimer);
  detach(s);
  const verify = s.options.verify;
  if (s.hash !== undefined && verify !== undefined) {
    if (s.hash.digest('hex') !== verify.hex) {
      mismatched(s, verify);
      return;
    }
    for (const chunk of s.heldAll) deliver(s, chunk);
    s.heldAll = [];
    if (s.held !== undefined) deliver(s, s.held);
    s.held = undefined;
  }
  s.options.onComplete?.(s.peer);
  s.out.push(null);
}

/** The bytes did not match the digest: start over when none went out yet (holdAll), else end in an error. */
function mismatched(s: ResumeState, verify: ParsedDigest): void {
  const { contributors, options } = s;
  options.onMismatch?.(contributors);
  const mismatch = new DigestMismatchError(`bytes from ${contributors.map((c) => c.name).join(', ')} do not match ${options.digest}`);
  if (s.holdAll && !s.deliveredAny) {
    // Nothing went out: start over from the candidates not tried yet.
    s.heldAll = [];
    s.hash = createHash(verify.algorithm);
    s.offset = options.start;
    s.contributors = [];
    next(s, mismatch);
    return;
  }
  if (s.deliveredAny) options.onWrongBytesDelivered?.();
  abandon(s, mismatch);
}

function attach(s: ResumeState, res: PeerResponse): void {
  const { start, end } = s.options;
  s.current = res;
  res.on('data', (chunk: Buffer) => {
    if (res !== s.current) return;
    if (s.offset + chunk.length > end + 1) {
      fail(s, new Error(`peer sent more than the ${end - start + 1} bytes asked for`));
      return;
    }
    if (s.offset === s.options.start) s.options.onFirstBytes?.();
    s.offset += chunk.length;
    if (push(s, chunk)) armIdle(s);
    else {
      clearTimeout(s.idleTimer);
      res.pause();
    }
  });
  res.once('end', () => {
    if (res !== s.current) return;
    if (s.offset === end + 1) complete(s);
    else fail(s, new Error(`peer body ended after byte ${s.offset} of ${end + 1}`));
  });
  res.once('error', (err) => {
    if (res === s.current) fail(s, err);
  });
  res.once('close', () => {
    if (res === s.current && !res.complete) fail(s, new Error('peer connection closed mid-body'));
  });
  armIdle(s);
}

function fail(s: ResumeState, err: Error): void {
  if (s.closed) return;
  clearTimeout(s.idleTimer);
  detach(s);
  if (s.offset === s.options.end + 1) {
    complete(s);
    return;
  }
  s.options.log.warn({ err, peer: s.peer.name, offset: s.offset }, 'peer failed mid-body; resuming from the next peer');
  s.options.onPeerFailure?.(s.peer, err);
  next(s, err);
}

/** Goes on from `offset` with the next candidate that has the bytes. */
function next(s: ResumeState, err: Error): void {
  const from = s.peer;
  s.options.open(s.offset, s.rest, s.abort.signal).then(
    (winner) => resumeWith(s, { from, err, winner }),
    (openErr: unknown) => abandon(s, openErr instanceof Error ? openErr : new Error(String(openErr))),
  );
}

/** What next() asked for came: `winner` goes on where `from` stopped (with `err`), or nobody has the bytes. */
function resumeWith(s: ResumeState, resume: { from: Candidate; err: Error; winner: RaceWinner<PeerResponse> | undefined }): void {
  const { from, err, winner } = resume;
  if (s.closed) {
    if (winner !== undefined) winner.value.destroy();
    return;
  }
  if (winner === undefined) {
    abandon(s, new Error(`no peer left to resume from byte ${s.offset} (after ${from.name}: ${err.message})`));
    return;
  }
  s.peer = winner.candidate;
  s.rest = winner.rest;
  s.contributors.push(s.peer);
  s.options.onResume?.(from, s.peer, s.offset);
  attach(s, winner.value);
}
