// The nonces of signed peer requests seen recently, so that a captured request
// cannot be sent again. A nonce only has to be remembered while its request's
// timestamp is inside the accepted clock skew (later the request is rejected
// as expired anyway), so every entry carries that expiry and is dropped after
// it. Memory is bounded twice: entries expire by time, in one-second buckets,
// and the cache never holds more than `maxEntries`: when full it refuses new
// nonces (the request is rejected) instead of growing or forgetting early,
// which would let a replay through.
export type ReplayVerdict = 'fresh' | 'replayed' | 'full';

export interface ReplayCacheOptions {
  /** Most nonces held at once (default 100,000: ~1,600 peer requests/s sustained over a 60 s window). */
  maxEntries?: number;
  /** Clock (default Date.now). */
  nowMs?: () => number;
}

export interface ReplayCache {
  /** Records `nonce` until `expiresAtMs`; 'replayed' when it is already there, 'full' when there is no room. */
  check(nonce: string, expiresAtMs: number): ReplayVerdict;
  /** Nonces held now (after dropping the expired ones). */
  size(): number;
}

export const DEFAULT_MAX_NONCES = 100_000;

export function createReplayCache(options: ReplayCacheOptions = {}): ReplayCache {
  const maxEntries = Math.max(1, options.maxEntries ?? DEFAULT_MAX_NONCES);
  const nowMs = options.nowMs ?? Date.now;
  const seen = new Set<string>();
  /** Expiry second -> the nonces that expire within it. At most ~2 x skew seconds of buckets. */
  const buckets = new Map<number, string[]>();
  let prunedSecond = -Infinity;

  const prune = (): void => {
    const second = Math.floor(nowMs() / 1000);
    if (second === prunedSecond) return;
    prunedSecond = second;
    for (const [bucket, nonces] of buckets) {
      // Every nonce of the bucket expires before (bucket + 1) s <= now.
      if (bucket >= second) continue;
      for (const nonce of nonces) seen.delete(nonce);
      buckets.delete(bucket);
    }
  };

  return {
    check(nonce, expiresAtMs) {
      prune();
      if (seen.has(nonce)) return 'replayed';
      if (seen.size >= maxEntries) return 'full';
      seen.add(nonce);
      const bucket = Math.floor(expiresAtMs / 1000);
      const list = buckets.get(bucket);
      if (list === undefined) buckets.set(bucket, [nonce]);
      else list.push(nonce);
      return 'fresh';
    },
    size() {
      prune();
      return seen.size;
    },
  };
}
