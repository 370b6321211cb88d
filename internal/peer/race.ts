// Asking candidates in turn, with a hedge. The first candidate is asked at
// once; when it has not answered within the hedge delay, the next one is
// asked as well (at most `maxInFlight` at a time). A miss (a 404: the filter's
// false positive) or a failure starts the next candidate at once. The first
// hit wins; every other attempt is aborted and a hit that comes in later is
// disposed of, so no response body is ever left unconsumed.
import type { Candidate } from './client.ts';
import type { HedgeDelay } from './hedge.ts';

export interface RaceOptions<T> {
  candidates: readonly Candidate[];
  /** One attempt: a value on a hit, undefined on a miss; rejects on failure. Must honour the signal. */
  attempt(candidate: Candidate, signal: AbortSignal): Promise<T | undefined>;
  /** Releases a hit that lost the race. */
  dispose(value: T): void;
  hedge: HedgeDelay;
  /** Attempts in flight at once (default 2: the first and one hedge). */
  maxInFlight?: number;
  /** Called each time a hedge (a second concurrent attempt) starts. */
  onHedge?(): void;
  /** Called for each failed attempt (not for misses, not for aborted losers). */
  onFailure?(candidate: Candidate, err: unknown): void;
  /** Gives up: every attempt is aborted and the race resolves undefined. */
  signal?: AbortSignal;
}

export interface RaceWinner<T> {
  value: T;
  candidate: Candidate;
  /** Candidates not known to lack the content (untried, or aborted as slower), in order, without the winner. */
  rest: Candidate[];
}

export function raceCandidates<T>(options: RaceOptions<T>): Promise<RaceWinner<T> | undefined> {
  const { candidates, hedge } = options;
  const maxInFlight = Math.max(1, options.maxInFlight ?? 2);
  return new Promise((resolve) => {
    const controllers = new Map<number, AbortController>();
    const ruledOut = new Set<number>();
    let next = 0;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;

    const onAbort = (): void => finish(undefined);
    const finish = (winner: RaceWinner<T> | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      for (const controller of controllers.values()) controller.abort();
      controllers.clear();
      resolve(winner);
    };

    const armHedge = (): void => {
      clearTimeout(timer);
      if (next >= candidates.length) return;
      timer = setTimeout(() => {
        if (settled || controllers.size >= maxInFlight) return;
        options.onHedge?.();
        start();
      }, hedge.delayMs());
    };

    const start = (): void => {
      if (settled) return;
      if (next >= candidates.length) {
        if (controllers.size === 0) finish(undefined);
        return;
      }
      const index = next++;
      const candidate = candidates[index] as Candidate;
      const controller = new AbortController();
      controllers.set(index, controller);
      const startedMs = performance.now();
      options.attempt(candidate, controller.signal).then(
        (value) => {
          controllers.delete(index);
          if (settled) {
            if (value !== undefined) options.dispose(value);
            return;
          }
          hedge.observe(performance.now() - startedMs);
          if (value === undefined) {
            ruledOut.add(index);
            start();
            return;
          }
          const rest = candidates.filter((_, i) => i !== index && !ruledOut.has(i));
          finish({ value, candidate, rest });
        },
        (err: unknown) => {
          controllers.delete(index);
          if (settled) return;
          ruledOut.add(index);
          options.onFailure?.(candidate, err);
          start();
        },
      );
      armHedge();
    };

    if (options.signal?.aborted === true) {
      finish(undefined);
      return;
    }
    options.signal?.addEventListener('abort', onAbort, { once: true });
    start();
  });
}
