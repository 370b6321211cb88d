// Retry policy for Kubernetes API calls: exponential backoff with jitter, which
// errors are worth retrying, Retry-After, and per-call signals.
import { KubeApiError } from './client.ts';

export interface BackoffOptions {
  /** First retry delay (before jitter). */
  minBackoffMs: number;
  /** Cap of the delay. */
  maxBackoffMs: number;
}

/**
 * Delay before retry number `attempt` (1 = first retry): min * 2^(attempt-1),
 * capped, then "equal jitter" (between half and all of it) so that many agents
 * failing together do not retry in step.
 */
export function backoffMs(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const ceiling = Math.min(options.maxBackoffMs, options.minBackoffMs * 2 ** exponent);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** The HTTP status of a failed call, when there was an answer. */
export function statusOf(err: unknown): number | undefined {
  return err instanceof KubeApiError ? err.status : undefined;
}

/** Retry-After of a 429/503 answer in milliseconds (seconds form only), if any. */
export function retryAfterMs(err: unknown): number | undefined {
  if (!(err instanceof KubeApiError)) return undefined;
  const value = err.headers['retry-after'];
  const seconds = Number(value);
  return typeof value === 'string' && value.trim() !== '' && Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined;
}

/**
 * Whether trying the same request again may succeed: no answer (connection
 * refused, reset, timeout), 401 (the token is re-read: it may have rotated),
 * 404 (the pod may be recreated), 408, 409, 429 and 5xx. Other 4xx (e.g. 422
 * Invalid: annotations over the API's limit) will fail again.
 */
export function isRetryable(err: unknown): boolean {
  const status = statusOf(err);
  if (status === undefined) return true;
  return status === 401 || status === 404 || status === 408 || status === 409 || status === 429 || status >= 500;
}

/** A short description of an API error for logs (the Status message when there is one). */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
    return `${err.message}${cause}`;
  }
  return String(err);
}

/** The signal of one API call: aborted by `parent` (close) or after `timeoutMs`. */
export function callSignal(parent: AbortSignal, timeoutMs: number): AbortSignal {
  return AbortSignal.any([parent, AbortSignal.timeout(timeoutMs)]);
}
