// A cap on the blob streams this agent pulls from peers at once. Each one
// holds a connection to a peer, a socket's worth of kernel buffers and up to
// a stream buffer (1 MiB) of our memory, so without a cap memory grows with
// the number of clients.
//
// When every slot is taken, a new blob request is not queued: the peer source
// answers "not here" at once, the registry answers 404, and containerd goes to
// the next host in hosts.toml (the upstream registry). Waiting would add the
// wait to every pull that queues up, hold the client's connection meanwhile,
// and the upstream is the fallback for every other miss anyway; a node
// already pulling `max` blobs from peers is better off spreading the rest.

export interface StreamLimit {
  /** Takes a slot: its release function (idempotent), or undefined when all are taken. */
  tryAcquire(): (() => void) | undefined;
  /** Slots taken now. */
  active(): number;
  readonly max: number;
}

/** `max` slots; 0 or less means no limit. */
export function createStreamLimit(max: number): StreamLimit {
  const limit = max > 0 ? Math.floor(max) : Number.POSITIVE_INFINITY;
  let taken = 0;
  return {
    max: limit,
    tryAcquire() {
      if (taken >= limit) return undefined;
      taken++;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        taken--;
      };
    },
    active: () => taken,
  };
}
