// The coordinator's side of a cold rollout: who is fetching which blob from
// the upstream right now. Every agent is the coordinator of the digests whose
// rendezvous hash over the ready agents it wins (coordinator.ts); this table
// holds its records, soft state with a short life:
//
// - ask(digest, asker): the digest's fetcher when there is a live one, else
//   the asker, recorded as the fetcher (its containerd goes upstream);
// - renew(digest, fetcher): the fetcher's agent says it is still at it (its
//   ingest grew, or the blob is committed and not yet in the index); a renew
//   for a digest without a record makes one, so a coordinator that restarted
//   or took over the digest learns the fetcher again within one renew;
// - drop(digest, fetcher): the fetch stalled or is over;
// - a record not renewed for `ttlMs`, or whose fetcher's agent is no longer
//   ready, or that an asker reports it could not stream from, is gone.
//
// Nothing is written anywhere else; losing this table costs at most one more
// upstream fetch per digest in flight.

export interface FetchRecordsOptions {
  /** A record lives this long after its last renew (or its creation). */
  ttlMs: number;
  /** Records kept at most; beyond, the one nearest its end is dropped (a rollout has tens of blobs in flight, not thousands). */
  maxRecords?: number;
  /** Whether the agent named is still a ready member (its pod exists, its endpoint is ready), or this agent. */
  isAlive(name: string): boolean;
  nowMs?(): number;
}

export interface FetchRecordStats {
  /** Records held now. */
  records: number;
  /** Asks answered: the asker fetches (`fetch`), or it streams from the fetcher (`follow`). */
  askedFetch: number;
  askedFollow: number;
}

export interface FetchRecords {
  /** The agent fetching `digest`: a live fetcher other than `failed`, else `asker` (now recorded as the fetcher). */
  ask(digest: string, asker: string, failed?: string): string;
  renew(digest: string, fetcher: string): void;
  drop(digest: string, fetcher: string): void;
  stats(): FetchRecordStats;
}

interface FetchRecord {
  fetcher: string;
  expiresAtMs: number;
}

export const DEFAULT_MAX_RECORDS = 4096;

export function createFetchRecords(options: FetchRecordsOptions): FetchRecords {
  const now = options.nowMs ?? Date.now;
  const maxRecords = options.maxRecords ?? DEFAULT_MAX_RECORDS;
  // Insertion order is renewal order (a renew moves the record last): the first one expires first.
  const records = new Map<string, FetchRecord>();
  const stats = { askedFetch: 0, askedFollow: 0 };

  const put = (digest: string, fetcher: string): void => {
    records.delete(digest);
    records.set(digest, { fetcher, expiresAtMs: now() + options.ttlMs });
    sweep();
  };
  const sweep = (): void => {
    const at = now();
    for (const [digest, record] of records) {
      if (record.expiresAtMs > at && records.size <= maxRecords) break;
      records.delete(digest);
    }
  };
  const live = (digest: string): FetchRecord | undefined => {
    const record = records.get(digest);
    if (record === undefined) return undefined;
    if (record.expiresAtMs > now() && options.isAlive(record.fetcher)) return record;
    records.delete(digest);
    return undefined;
  };

  return {
    ask(digest, asker, failed) {
      const record = live(digest);
      if (record !== undefined && record.fetcher !== failed) {
        if (record.fetcher === asker) stats.askedFetch++;
        else stats.askedFollow++;
        return record.fetcher;
      }
      put(digest, asker);
      stats.askedFetch++;
      return asker;
    },
    renew(digest, fetcher) {
      const record = live(digest);
      if (record === undefined || record.fetcher === fetcher) put(digest, fetcher);
    },
    drop(digest, fetcher) {
      if (records.get(digest)?.fetcher === fetcher) records.delete(digest);
    },
    stats: () => {
      sweep();
      return { records: records.size, ...stats };
    },
  };
}
