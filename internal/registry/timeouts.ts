// Limits for slow or stalled clients of the registry's HTTP server, so that a
// client that sends its request slowly, or stops reading its response, cannot
// hold a connection (and a buffer of the file fast path) for ever.
//
// - headersTimeoutMs: the whole request head must arrive within it (slowloris).
// - requestTimeoutMs: the whole request; the read API takes no request body,
//   so this is the head again, with room for a client that sends one anyway.
// - keepAliveTimeoutMs: an idle keep-alive connection is closed after it.
// - idleTimeoutMs: a connection on which nothing moves for this long (a
//   client that reads nothing of its response: the socket takes no more
//   writes) is destroyed. The copying path writes 1 MiB chunks and a chunk
//   counts as moved once the kernel took all of it, so a client must read at
//   least ~1 MiB per idleTimeoutMs (35 KB/s at 30 s) to keep its stream;
//   during a sendfile (send-sendfile.ts) the addon applies the limit to the
//   socket itself: nothing taken for that long.
//   Longer than the peer source's idle timeout (10 s), so a stall of a peer
//   is handled by resuming from another peer before the client is cut; and
//   paused while a peer's blob is held back for its digest check, until its
//   first byte goes out (routes-blobs.ts).
// Node checks the headers and request timeouts every
// connectionsCheckingIntervalMs, so they fire up to that much late.

export interface ServerTimeouts {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  idleTimeoutMs: number;
  connectionsCheckingIntervalMs: number;
}

export const DEFAULT_SERVER_TIMEOUTS: Readonly<ServerTimeouts> = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
  // Fastify's default.
  keepAliveTimeoutMs: 72_000,
  idleTimeoutMs: 30_000,
  connectionsCheckingIntervalMs: 1000,
};

/** `overrides` over the defaults; values left undefined keep their default. */
export function resolveTimeouts(overrides: Partial<ServerTimeouts> = {}): ServerTimeouts {
  const timeouts = { ...DEFAULT_SERVER_TIMEOUTS };
  for (const key of Object.keys(timeouts) as Array<keyof ServerTimeouts>) {
    const value = overrides[key];
    if (value !== undefined) timeouts[key] = value;
  }
  return timeouts;
}

/** The Fastify server options that apply `timeouts` (a 0 disables that limit, as in Node). */
export function fastifyTimeoutOptions(timeouts: ServerTimeouts): {
  connectionTimeout: number;
  keepAliveTimeout: number;
  requestTimeout: number;
  http: { headersTimeout: number; connectionsCheckingInterval: number };
} {
  // Node wants headersTimeout <= requestTimeout when both are set.
  const requestTimeout = timeouts.requestTimeoutMs === 0 ? 0 : Math.max(timeouts.requestTimeoutMs, timeouts.headersTimeoutMs);
  return {
    connectionTimeout: timeouts.idleTimeoutMs,
    keepAliveTimeout: timeouts.keepAliveTimeoutMs,
    requestTimeout,
    http: { headersTimeout: timeouts.headersTimeoutMs, connectionsCheckingInterval: Math.max(1, timeouts.connectionsCheckingIntervalMs) },
  };
}
