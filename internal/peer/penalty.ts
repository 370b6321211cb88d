// Penalties for peers that misbehave: refuse or reset connections, stall,
// answer 5xx or send bytes that do not match the digest. A penalised peer is
// not excluded (it may be the only one with the content): it goes last when
// candidates are ordered, until its penalty runs out. Repeated faults double
// the penalty (up to maxMs); a success takes one strike off, and a peer whose
// last fault is long past starts again from scratch. Time-based, no timers;
// the map is bounded (least recently faulted peers are dropped first).
// A peer that sent wrong bytes for a key is also distrusted for that key: it
// is left out of that key's candidates for the longest penalty (maxMs), so
// that when it is the only holder the client goes upstream instead of
// getting the same wrong bytes again.
import type { Candidate } from './client.ts';

export interface PenaltyOptions {
  /** Penalty after a first fault (default 5000 ms); doubled for each further strike. */
  baseMs?: number;
  /** Longest penalty (default 60000 ms). */
  maxMs?: number;
  /** Peers remembered at most, and distrusted (peer, key) pairs at most (default 1024 each). */
  maxPeers?: number;
  /** Clock (default Date.now), for tests. */
  nowMs?: () => number;
}

export interface PeerPenalties {
  /** Records a fault of the peer; returns how long it is penalised for, in ms. */
  penalise(peer: string): number;
  /** Records a success of the peer: one strike less. */
  succeeded(peer: string): void;
  /** Whether the peer is penalised now. */
  isPenalised(peer: string): boolean;
  /** The peer sent wrong bytes for `key`: left out of its candidates for maxMs. */
  distrust(peer: string, key: string): void;
  /**
   * The candidates for `key` without those distrusted for it, the penalised
   * ones moved last (those whose penalty ends first go first among them);
   * stable otherwise.
   */
  order<T extends Candidate>(candidates: readonly T[], key?: string): readonly T[];
  /** Peers penalised now. */
  active(): number;
}

interface Entry {
  strikes: number;
  untilMs: number;
}

/** Sets `key` as the newest entry of an insertion-ordered map, dropping the oldest beyond `max`. */
function setNewest<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > max) {
    const oldest = map.keys().next().value;
    if (oldest === undefined) break;
    map.delete(oldest);
  }
}

export function createPeerPenalties(options: PenaltyOptions = {}): PeerPenalties {
  const baseMs = Math.max(1, options.baseMs ?? 5000);
  const maxMs = Math.max(baseMs, options.maxMs ?? 60_000);
  const maxPeers = Math.max(1, options.maxPeers ?? 1024);
  const now = options.nowMs ?? Date.now;
  /** In order of the last fault (Map insertion order): the first is the oldest. */
  const entries = new Map<string, Entry>();
  /** `key \n peer` -> until when; oldest first, bounded like `entries`. */
  const distrusted = new Map<string, number>();

  const isDistrusted = (peer: string, key: string, nowMs: number): boolean => {
    const id = `${key}\n${peer}`;
    const untilMs = distrusted.get(id);
    if (untilMs === undefined) return false;
    if (untilMs > nowMs) return true;
    distrusted.delete(id);
    return false;
  };

  const current = (peer: string, nowMs: number): Entry | undefined => {
    const entry = entries.get(peer);
    if (entry === undefined) return undefined;
    // Quiet for a whole maximal penalty after the last one ended: forgotten.
    if (nowMs - entry.untilMs > maxMs) {
      entries.delete(peer);
      return undefined;
    }
    return entry;
  };

  return {
    penalise(peer) {
      const nowMs = now();
      const strikes = (current(peer, nowMs)?.strikes ?? 0) + 1;
      const penaltyMs = Math.min(maxMs, baseMs * 2 ** Math.min(strikes - 1, 30));
      setNewest(entries, peer, { strikes, untilMs: nowMs + penaltyMs }, maxPeers);
      return penaltyMs;
    },
    succeeded(peer) {
      const entry = current(peer, now());
      if (entry === undefined) return;
      entry.strikes = Math.max(0, entry.strikes - 1);
      if (entry.strikes === 0) entries.delete(peer);
    },
    distrust(peer, key) {
      setNewest(distrusted, `${key}\n${peer}`, now() + maxMs, maxPeers);
    },
    isPenalised(peer) {
      const nowMs = now();
      const entry = current(peer, nowMs);
      return entry !== undefined && entry.untilMs > nowMs;
    },
    order(candidates, key) {
      const nowMs = now();
      if (key !== undefined && distrusted.size > 0) candidates = candidates.filter((c) => !isDistrusted(c.name, key, nowMs));
      if (entries.size === 0) return candidates;
      let penalised: Array<{ candidate: (typeof candidates)[number]; untilMs: number }> | undefined;
      const fine: Array<(typeof candidates)[number]> = [];
      for (const candidate of candidates) {
        const entry = current(candidate.name, nowMs);
        if (entry !== undefined && entry.untilMs > nowMs) (penalised ??= []).push({ candidate, untilMs: entry.untilMs });
        else fine.push(candidate);
      }
      if (penalised === undefined) return candidates;
      penalised.sort((a, b) => a.untilMs - b.untilMs);
      for (const { candidate } of penalised) fine.push(candidate);
      return fine;
    },
    active() {
      const nowMs = now();
      let count = 0;
      for (const entry of entries.values()) if (entry.untilMs > nowMs) count++;
      return count;
    },
  };
}
