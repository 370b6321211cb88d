// A resilient list+watch loop over one collection: list once, then watch from
// the list's resourceVersion with bookmarks; relist only on 410 Gone; reconnect
// after broken watches with backoff + jitter. The last known objects are kept
// while the API is unreachable.
import type { KubeClient, WatchEvent } from './client.ts';
import type { Logger } from '../log/logger.ts';
import { backoffMs, callSignal, describeError, statusOf, type BackoffOptions } from './retry.ts';

export interface ListResult {
  readonly items: readonly unknown[];
  readonly resourceVersion: string;
}

export interface ListWatchOptions<T> {
  client: KubeClient;
  /** The collection path, e.g. /api/v1/namespaces/default/pods. */
  path: string;
  labelSelector?: string;
  /** Turns an API object into the view kept here; undefined: malformed, ignored (and logged). */
  parse(obj: unknown): T | undefined;
  /** Called for every change of the kept views (next undefined: deleted). */
  onChange(name: string, next: T | undefined, previous: T | undefined): void;
  logger: Logger;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Timeout of each list request. */
  listTimeoutMs?: number;
  /** A watch silent for this long (no event, no bookmark) is restarted. */
  idleTimeoutMs?: number;
}

export interface ListWatch<T> {
  /** True once the first list has been applied. */
  synced(): boolean;
  /** The last known objects by name. */
  objects(): ReadonlyMap<string, T>;
  stats(): { lists: number; watches: number; failures: number };
  close(): Promise<void>;
}

interface Named {
  readonly name: string;
  readonly resourceVersion: string;
}

type WatchEnd = { kind: 'expired'; events: number } | { kind: 'ended'; events: number; durationMs: number } | { kind: 'failed'; err: unknown };

/** The items and resourceVersion of a list answer (a List object). */
export function listResult(body: unknown): ListResult {
  if (body === null || typeof body !== 'object' || !('items' in body) || !Array.isArray(body.items)) throw new Error('the API answered a list without items');
  return { items: body.items, resourceVersion: resourceVersionOf(body) ?? '' };
}

function expiredStatus(obj: unknown): boolean {
  return obj !== null && typeof obj === 'object' && 'code' in obj && obj.code === 410;
}

function resourceVersionOf(obj: unknown): string | undefined {
  if (obj === null || typeof obj !== 'object' || !('metadata' in obj)) return undefined;
  const metadata: unknown = obj.metadata;
  if (metadata === null || typeof metadata !== 'object' || !('resourceVersion' in metadata)) return undefined;
  return typeof metadata.resourceVersion === 'string' ? metadata.resourceVersion : undefined;
}

export function startListWatch<T extends Named>(options: ListWatchOptions<T>): ListWatch<T> {
  const log = options.logger;
  const backoff: BackoffOptions = { minBackoffMs: options.minBackoffMs ?? 500, maxBackoffMs: options.maxBackoffMs ?? 30_000 };
  const listTimeoutMs = options.listTimeoutMs ?? 30_000;
  // The real server sends a bookmark about once a minute.
  const idleTimeoutMs = options.idleTimeoutMs ?? 90_000;
  const objects = new Map<string, T>();
  const closing = new AbortController();
  const stats = { lists: 0, watches: 0, failures: 0 };
  let resourceVersion = '';
  let isSynced = false;
  let closed = false;
  let wake: (() => void) | undefined;

  const apply = (name: string, next: T | undefined): void => {
    const previous = objects.get(name);
    if (next === undefined) {
      if (previous === undefined) return;
      objects.delete(name);
    } else {
      if (previous !== undefined && previous.resourceVersion === next.resourceVersion && next.resourceVersion !== '') return;
      objects.set(name, next);
    }
    try {
      options.onChange(name, next, previous);
    } catch (err) {
      log.error({ err, path: options.path, name }, 'handling a change failed');
    }
  };

  const parse = (obj: unknown): T | undefined => {
    const view = options.parse(obj);
    if (view === undefined) log.warn({ path: options.path }, 'ignoring a malformed object');
    return view;
  };

  async function relist(): Promise<void> {
    const query = { labelSelector: options.labelSelector };
    const result = listResult(await options.client.get(options.path, query, callSignal(closing.signal, listTimeoutMs)));
    stats.lists++;
    const seen = new Set<string>();
    for (const item of result.items) {
      const view = parse(item);
      if (view === undefined) continue;
      seen.add(view.name);
      apply(view.name, view);
    }
    for (const name of [...objects.keys()]) if (!seen.has(name)) apply(name, undefined);
    resourceVersion = result.resourceVersion;
    isSynced = true;
  }

  async function watchOnce(): Promise<WatchEnd> {
    const startedAt = Date.now();
    let events = 0;
    let expired = false;
    const onEvent = ({ type, object }: WatchEvent): void => {
      if (closed) return;
      if (type === 'ERROR') {
        if (expiredStatus(object)) expired = true;
        else log.warn({ path: options.path, status: object }, 'watch error event');
        return;
      }
      events++;
      const rv = resourceVersionOf(object);
      if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') {
        const view = parse(object);
        if (view !== undefined) apply(view.name, type === 'DELETED' ? undefined : view);
      }
      if (rv !== undefined && rv !== '') resourceVersion = rv; // BOOKMARK: only the version moves
    };
    stats.watches++;
    const query = {
      resourceVersion,
      allowWatchBookmarks: true,
      labelSelector: options.labelSelector,
      // Spread the server-side ends of the watches over 5-10 minutes, as client-go does.
      timeoutSeconds: 300 + Math.floor(Math.random() * 300),
    };
    let err: unknown;
    try {
      await options.client.watch(options.path, query, onEvent, { signal: closing.signal, idleTimeoutMs });
    } catch (caught) {
      err = caught;
    }
    if (expired || statusOf(err) === 410) return { kind: 'expired', events };
    if (err === undefined || (err instanceof Error && err.name === 'TimeoutError')) return { kind: 'ended', events, durationMs: Date.now() - startedAt };
    return { kind: 'failed', err };
  }

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      timer.unref();
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  async function loop(): Promise<void> {
    let attempt = 0;
    while (!closed) {
      let failure: unknown;
      try {
        const listed = resourceVersion === '';
        if (listed) await relist();
        const end = closed ? undefined : await watchOnce();
        if (end?.kind === 'expired' && listed && end.events === 0) {
          failure = new Error('the watch expired right after a list'); // back off instead of relisting in a tight loop
          resourceVersion = '';
        } else if (end?.kind === 'expired') {
          log.info({ path: options.path, resourceVersion }, 'watch expired (410 Gone); relisting');
          resourceVersion = '';
          attempt = 0;
          continue;
        } else if (end?.kind === 'failed') failure = end.err;
        else if (end?.kind === 'ended' && end.events === 0 && end.durationMs < 1000) failure = new Error('the watch ended at once');
        else attempt = 0;
      } catch (err) {
        failure = err;
      }
      if (closed || failure === undefined) continue;
      attempt++;
      stats.failures++;
      const delayMs = backoffMs(attempt, backoff);
      log.warn({ err: failure, path: options.path, detail: describeError(failure), attempt, retryInMs: delayMs }, 'list/watch failed; keeping the last known state and retrying');
      await sleep(delayMs);
    }
  }

  const done = loop();

  return {
    synced: () => isSynced,
    objects: () => objects,
    stats: () => ({ ...stats }),
    async close() {
      closed = true;
      closing.abort();
      wake?.();
      await done;
    },
  };
}
