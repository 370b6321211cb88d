// Faults on demand for reliability tests: a delay before every answer, and
// answering 500 or 429 (with Retry-After, as the real server's max-in-flight
// filter does) to every request for a while. Stop/restart and dropping
// watches live in server.ts.
import type { ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { failure, type Status } from './status.ts';

export interface Faults {
  /** Delays every answer (watch streams: their start) by `ms`; 0 turns it off. */
  delayMs(ms: number): void;
  /** Answers every request with `status` for the next `forMs` milliseconds. */
  failWith(status: 500 | 429, forMs: number): void;
  clear(): void;
}

export interface FaultControl extends Faults {
  /** Applies the current faults to a request; true when it was answered with an injected failure. */
  apply(res: ServerResponse): Promise<boolean>;
}

function failureStatus(code: 500 | 429, retryAfterSeconds: number): Status {
  if (code === 429) {
    return failure(429, 'TooManyRequests', 'Too many requests, please try again later.', { retryAfterSeconds });
  }
  return failure(500, 'InternalError', 'Internal error occurred: injected fault', { causes: [{ reason: '', message: 'injected fault', field: '' }] });
}

export function createFaults(): FaultControl {
  let delay = 0;
  let failStatus: 500 | 429 = 500;
  let failUntil = 0;
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
    clear() {
      delay = 0;
      failUntil = 0;
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
