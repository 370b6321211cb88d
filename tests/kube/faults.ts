// Faults on demand for reliability tests: a delay before every answer,
// answering 500 or 429 (with Retry-After, as the real server's max-in-flight
// filter does) to every request for a while, and failing watches only for a
// while (410: the ERROR event a watch from a compacted resourceVersion gets;
// 500: an InternalError Status) while lists and writes still work.
// Stop/restart and dropping watches live in server.ts.
import type { ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { failure, gone, type Status } from './status.ts';

export interface Faults {
  /** Delays every answer (watch streams: their start) by `ms`; 0 turns it off. */
  delayMs(ms: number): void;
  /** Answers every request with `status` for the next `forMs` milliseconds. */
  failWith(status: 500 | 429, forMs: number): void;
  /**
   * Fails every new watch for the next `forMs` milliseconds: 410, a 200 whose one event is the ERROR with the 410
   * Expired Status (what the real server sends a watch from a resourceVersion it no longer has); 500, an
   * InternalError answer. Lists, gets and writes still work. Open watches are untouched (dropWatches() cuts them).
   */
  failWatches(status: 410 | 500, forMs: number): void;
  clear(): void;
}

export interface FaultControl extends Faults {
  /** Applies the current faults to a request; true when it was answered with an injected failure. */
  apply(res: ServerResponse): Promise<boolean>;
  /** Applies the watch faults to a watch request; true when it was answered with an injected failure. */
  applyToWatch(res: ServerResponse): boolean;
}

function failureStatus(code: 500 | 429, retryAfterSeconds: number): Status {
  if (code === 429) {
    return failure(429, 'TooManyRequests', 'Too many requests, please try again later.', { retryAfterSeconds });
  }
  return failure(500, 'InternalError', 'Internal error occurred: injected fault', { causes: [{ reason: '', message: 'injected fault', field: '' }] });
}

/** The injected answer to a watch: the 410 ERROR event on a 200 stream, or a 500 Status. */
function failWatch(res: ServerResponse, status: 410 | 500): void {
  if (status === 500) {
    const body = JSON.stringify(failureStatus(500, 1));
    res.writeHead(500, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }).end(body);
    return;
  }
  res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
  res.end(`${JSON.stringify({ type: 'ERROR', object: gone('too old resource version: injected fault') })}\n`);
}

export function createFaults(): FaultControl {
  let delay = 0;
  let failStatus: 500 | 429 = 500;
  let failUntil = 0;
  let watchStatus: 410 | 500 = 410;
  let watchFailUntil = 0;
  return {
    delayMs(ms) {
      if (!Number.isFinite(ms) || ms < 0) throw new Error(`delayMs: need a non-negative number, got ${ms}`);
      delay = ms;
    },
    failWith(status, forMs) {
      if (status !== 500 && status !== 429) throw new Error(`failWith: status must be 500 or 429, got ${String(status)}`);
      if (!Number.isFinite(forMs) || forMs < 0) throw new Error(`failWith: need a non-negative duration, got ${forMs}`);
      failStatus = status;
      failUntil = Date.now() + forMs;
    },
    failWatches(status, forMs) {
      if (status !== 410 && status !== 500) throw new Error(`failWatches: status must be 410 or 500, got ${String(status)}`);
      if (!Number.isFinite(forMs) || forMs < 0) throw new Error(`failWatches: need a non-negative duration, got ${forMs}`);
      watchStatus = status;
      watchFailUntil = Date.now() + forMs;
    },
    clear() {
      delay = 0;
      failUntil = 0;
      watchFailUntil = 0;
    },
    applyToWatch(res) {
      if (Date.now() >= watchFailUntil || res.destroyed) return false;
      failWatch(res, watchStatus);
      return true;
    },
    async apply(res) {
      if (delay > 0) await sleep(delay);
      const remainingMs = failUntil - Date.now();
      if (remainingMs <= 0 || res.destroyed) return false;
      const retryAfterSeconds = Math.max(1, Math.ceil(remainingMs / 1000));
      const body = JSON.stringify(failureStatus(failStatus, retryAfterSeconds));
      const headers: Record<string, string | number> = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) };
      if (failStatus === 429) headers['Retry-After'] = retryAfterSeconds;
      res.writeHead(failStatus, headers).end(body);
      return true;
    },
  };
}
