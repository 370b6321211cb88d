// Concurrent calls for the same key share one run of the work: the first
// call starts it, the others get its promise, and the key is free again once
// it settles (no caching: a call after that runs the work anew). Used where
// many requests ask the same question at once, e.g. a rollout's nodes
// resolving one tag: one containerd images Get, one peer race, not hundreds.
// The work takes no caller's AbortSignal: one caller giving up must not fail
// the others.

export interface SingleFlight<T> {
  run(key: string, work: () => Promise<T>): Promise<T>;
  /** Keys with work in flight now. */
  inFlight(): number;
}

export function createSingleFlight<T>(): SingleFlight<T> {
  const running = new Map<string, Promise<T>>();
  return {
    run(key, work) {
      const shared = running.get(key);
      if (shared !== undefined) return shared;
      const started = work().finally(() => running.delete(key));
      running.set(key, started);
      return started;
    },
    inFlight: () => running.size,
  };
}
