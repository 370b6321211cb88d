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
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { Logger } from '../log/logger.ts';
import type { ParsedDigest } from '../oci/digest.ts';
import { NotFoundError } from '../oci/store.ts';
import type { Candidate } from './client.ts';
import type { RaceWinner } from './race.ts';

/** Opens the bytes from `offset` to the stream's end on one of `candidates`. */
export type RangeOpener = (offset: number, candidates: readonly Candidate[], signal: AbortSignal) => Promise<RaceWinner<IncomingMessage> | undefined>;

export interface ResumingStreamOptions {
  digest: string;
  /** The first peer's response, delivering from `start`. */
  first: RaceWinner<IncomingMessage>;
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
}

/**
 * Bytes buffered between the peer's socket and the client's before the peer
 * is paused: 1 MiB x --max-peer-streams (32) = 32 MiB at most. 256 KiB made
 * peer pulls about 5% slower (2-node A/B, 300 MiB images) and did not lower
 * bench:load-peer's peak RSS.
 */
const STREAM_BUFFER_BYTES = 1024 * 1024;

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

export function createResumingStream(options: ResumingStreamOptions): Readable {
  const { start, end, log } = options;
  const verify = options.verify;
  const holdAll = verify !== undefined && options.holdAll === true;
  let hash: Hash | undefined = verify === undefined ? undefined : createHash(verify.algorithm);
  const abort = new AbortController();
  let offset = start;
  let current: IncomingMessage | undefined;
  let peer: Candidate = options.first.candidate;
  let rest: readonly Candidate[] = options.first.rest;
  /** Last chunk, held back until the digest is checked (verifying streams only). */
  let held: Buffer | undefined;
  /** Every chunk, held back until the digest is checked (holdAll). */
  let heldAll: Buffer[] = [];
  /** The peers whose bytes are in the hash. */
  let contributors: Candidate[] = [peer];
  let idleTimer: NodeJS.Timeout | undefined;
  let closed = false;
  let deliveredAny = false;

  const out = new Readable({
    highWaterMark: STREAM_BUFFER_BYTES,
    read() {
      if (current !== undefined && current.isPaused()) {
        current.resume();
        armIdle();
      }
    },
    destroy(err, callback) {
      closed = true;
      clearTimeout(idleTimer);
      abort.abort();
      detach();
      callback(err);
    },
  });

  const armIdle = (): void => {
    clearTimeout(idleTimer);
    const res = current;
    idleTimer = setTimeout(() => {
      if (res === current) fail(new Error(`peer sent nothing for ${options.idleTimeoutMs} ms`));
    }, options.idleTimeoutMs);
  };

  const detach = (): void => {
    const res = current;
    current = undefined;
    if (res === undefined) return;
    res.removeAllListeners('data');
    res.removeAllListeners('end');
    res.removeAllListeners('close');
    // Keep an error listener: a late error from a destroyed body must not go unheard.
    res.on('error', () => {});
    res.destroy();
  };

  const deliver = (chunk: Buffer): boolean => {
    deliveredAny = true;
    return out.push(chunk);
  };

  const push = (chunk: Buffer): boolean => {
    if (hash === undefined) return deliver(chunk);
    hash.update(chunk);
    if (holdAll) {
      heldAll.push(chunk);
      return true;
    }
    const previous = held;
    held = chunk;
    return previous === undefined ? true : deliver(previous);
  };

  /** Ends the stream with an error; before any byte went out, as not found. */
  const abandon = (err: Error): void => {
    out.destroy(failureOf(err, options.digest, deliveredAny));
  };

  const complete = (): void => {
    clearTimeout(idleTimer);
    detach();
    if (hash !== undefined && verify !== undefined) {
      const actual = hash.digest('hex');
      if (actual !== verify.hex) {
        options.onMismatch?.(contributors);
        const mismatch = new DigestMismatchError(`bytes from ${contributors.map((c) => c.name).join(', ')} do not match ${options.digest}`);
        if (holdAll && !deliveredAny) {
          // Nothing went out: start over from the candidates not tried yet.
          heldAll = [];
          hash = createHash(verify.algorithm);
          offset = start;
          contributors = [];
          next(mismatch);
          return;
        }
        if (deliveredAny) options.onWrongBytesDelivered?.();
        abandon(mismatch);
        return;
      }
      for (const chunk of heldAll) deliver(chunk);
      heldAll = [];
      if (held !== undefined) deliver(held);
      held = undefined;
    }
    options.onComplete?.(peer);
    out.push(null);
  };

  const attach = (res: IncomingMessage): void => {
    current = res;
    res.on('data', (chunk: Buffer) => {
      if (res !== current) return;
      if (offset + chunk.length > end + 1) {
        fail(new Error(`peer sent more than the ${end - start + 1} bytes asked for`));
        return;
      }
      offset += chunk.length;
      if (push(chunk)) armIdle();
      else {
        clearTimeout(idleTimer);
        res.pause();
      }
    });
    res.once('end', () => {
      if (res !== current) return;
      if (offset === end + 1) complete();
      else fail(new Error(`peer body ended after byte ${offset} of ${end + 1}`));
    });
    res.once('error', (err) => {
      if (res === current) fail(err);
    });
    res.once('close', () => {
      if (res === current && !res.complete) fail(new Error('peer connection closed mid-body'));
    });
    armIdle();
  };

  const fail = (err: Error): void => {
    if (closed) return;
    clearTimeout(idleTimer);
    detach();
    if (offset === end + 1) {
      complete();
      return;
    }
    log.warn({ err, peer: peer.name, offset }, 'peer failed mid-body; resuming from the next peer');
    options.onPeerFailure?.(peer, err);
    next(err);
  };

  /** Goes on from `offset` with the next candidate that has the bytes. */
  const next = (err: Error): void => {
    const from = peer;
    options.open(offset, rest, abort.signal).then(
      (winner) => {
        if (closed) {
          if (winner !== undefined) winner.value.destroy();
          return;
        }
        if (winner === undefined) {
          abandon(new Error(`no peer left to resume from byte ${offset} (after ${from.name}: ${err.message})`));
          return;
        }
        peer = winner.candidate;
        rest = winner.rest;
        contributors.push(peer);
        options.onResume?.(from, peer, offset);
        attach(winner.value);
      },
      (openErr: unknown) => abandon(openErr instanceof Error ? openErr : new Error(String(openErr))),
    );
  };

  attach(options.first.value);
  return out;
}
