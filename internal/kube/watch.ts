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

/** The state of one list+watch loop, shared by the functions below. */
interface LoopState<T extends Named> {
  readonly options: ListWatchOptions<T>;
  readonly log: Logger;
  readonly backoff: BackoffOptions;
  readonly listTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly objects: Map<string, T>;
  readonly closing: AbortController;
  readonly stats: { lists: number; watches: number; failures: number };
  resourceVersion: string;
  isSynced: boolean;
  closed: boolean;
  wake: (() => void) | undefined;
}

/** What one pass of the loop came to: nothing to wait for, a relist at once, or a failure to back off from. */
type PassOutcome = { kind: 'ok' } | { kind: 'relist' } | { kind: 'failed'; failure: unknown };

function loopState<T extends Named>(options: ListWatchOptions<T>): LoopState<T> {
  return {
    options,
    log: options.logger,
    backoff: { minBackoffMs: options.minBackoffMs ?? 500, maxBackoffMs: options.maxBackoffMs ?? 30_000 },
    listTimeoutMs: options.listTimeoutMs ?? 30_000,
    // The real server sends a bookmark about once a minute.
    idleTimeoutMs: options.idleTimeoutMs ?? 90_000,
    objects: new Map<string, T>(),
    closing: new AbortController(),
    stats: { lists: 0, watches: 0, failures: 0 },
    resourceVersion: '',
    isSynced: false,
    closed: false,
    wake: undefined,
  };
}

/** Keeps `next` (undefined: deleted) under `name` and tells onChange when that changed anything. */
function apply<T extends Named>(state: LoopState<T>, name: string, next: T | undefined): void {
  const previous = state.objects.get(name);
  if (next === undefined) {
    if (previous === undefined) return;
    state.objects.delete(name);
  } else {
    if (previous !== undefined && previous.resourceVersion === next.resourceVersion && next.resourceVersion !== '') return;
    state.objects.set(name, next);
  }
  try {
    state.options.onChange(name, next, previous);
  } catch (err) {
    state.log.error({ err, path: state.options.path, name }, 'handling a change failed');
  }
}

function parseView<T extends Named>(state: LoopState<T>, obj: unknown): T | undefined {
  const view = state.options.parse(obj);
  if (view === undefined) state.log.warn({ path: state.options.path }, 'ignoring a malformed object');
  return view;
}

async function relist<T extends Named>(state: LoopState<T>): Promise<void> {
  const { options } = state;
  const query = { labelSelector: options.labelSelector };
  const result = listResult(await options.client.get(options.path, query, callSignal(state.closing.signal, state.listTimeoutMs)));
  state.stats.lists++;
  const seen = new Set<string>();
  for (const item of result.items) {
    const view = parseView(state, item);
    if (view === undefined) continue;
    seen.add(view.name);
    apply(state, view.name, view);
  }
  for (const name of [...state.objects.keys()]) if (!seen.has(name)) apply(state, name, undefined);
  state.resourceVersion = result.resourceVersion;
  state.isSynced = true;
}

/** Counts of one watch, kept by its events. */
interface WatchProgress {
  events: number;
  expired: boolean;
}

function onWatchEvent<T extends Named>(state: LoopState<T>, progress: WatchProgress, { type, object }: WatchEvent): void {
  if (state.closed) return;
  if (type === 'ERROR') {
    if (expiredStatus(object)) progress.expired = true;
    else state.log.warn({ path: state.options.path, status: object }, 'watch error event');
    return;
  }
  progress.events++;
  const rv = resourceVersionOf(object);
  if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') {
    const view = parseView(state, object);
    if (view !== undefined) apply(state, view.name, type === 'DELETED' ? undefined : view);
  }
  if (rv !== undefined && rv !== '') state.resourceVersion = rv; // BOOKMARK: only the version moves
}

async function watchOnce<T extends Named>(state: LoopState<T>): Promise<WatchEnd> {
  const { options } = state;
  const startedAt = Date.now();
  const progress: WatchProgress = { events: 0, expired: false };
  state.stats.watches++;
  const query = {
    resourceVersion: state.resourceVersion,
    allowWatchBookmarks: true,
    labelSelector: options.labelSelector,
    // Spread the server-side ends of the watches over 5-10 minutes, as client-go does.
    timeoutSeconds: 300 + Math.floor(Math.random() * 300),
  };
  let err: unknown;
  try {
    const onEvent = (event: WatchEvent): void => onWatchEvent(state, progress, event);
    await options.client.watch(options.path, query, onEvent, { signal: state.closing.signal, idleTimeoutMs: state.idleTimeoutMs });
  } catch (caught) {
    err = caught;
  }
  const { events } = progress;
  if (progress.expired || statusOf(err) === 410) return { kind: 'expired', events };
  if (err === undefined || (err instanceof Error && err.name === 'TimeoutError')) return { kind: 'ended', events, durationMs: Date.now() - startedAt };
  return { kind: 'failed', err };
}

function sleep<T extends Named>(state: LoopState<T>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    state.wake = () => {
      clearTimeout(timer);
      resolve();
    };
  });
}

/** One list (when there is no resourceVersion) and one watch; throws what the list threw. */
async function pass<T extends Named>(state: LoopState<T>): Promise<PassOutcome> {
  const listed = state.resourceVersion === '';
  if (listed) await relist(state);
  const end = state.closed ? undefined : await watchOnce(state);
  if (end?.kind === 'expired' && listed && end.events === 0) {
    state.resourceVersion = '';
    return { kind: 'failed', failure: new Error('the watch expired right after a list') }; // back off instead of relisting in a tight loop
  }
  if (end?.kind === 'expired') {
    state.log.info({ path: state.options.path, resourceVersion: state.resourceVersion }, 'watch expired (410 Gone); relisting');
    state.resourceVersion = '';
    return { kind: 'relist' };
  }
  if (end?.kind === 'failed') return { kind: 'failed', failure: end.err };
  if (end?.kind === 'ended' && end.events === 0 && end.durationMs < 1000) return { kind: 'failed', failure: new Error('the watch ended at once') };
  return { kind: 'ok' };
}

async function loop<T extends Named>(state: LoopState<T>): Promise<void> {
  let attempt = 0;
  while (!state.closed) {
    let failure: unknown;
    try {
      const outcome = await pass(state);
      if (outcome.kind === 'failed') failure = outcome.failure;
      else attempt = 0;
      if (outcome.kind === 'relist') continue;
    } catch (err) {
      failure = err;
    }
    if (state.closed || failure === undefined) continue;
    attempt++;
    state.stats.failures++;
    const delayMs = backoffMs(attempt, state.backoff);
    state.log.warn(
      { err: failure, path: state.options.path, detail: describeError(failure), attempt, retryInMs: delayMs },
      'list/watch failed; keeping the last known state and retrying',
    );
    await sleep(state, delayMs);
  }
}

export function startListWatch<T extends Named>(options: ListWatchOptions<T>): ListWatch<T> {
  const state = loopState(options);
  const done = loop(state);
  return {
    synced: () => state.isSynced,
    objects: () => state.objects,
    stats: () => ({ ...state.stats }),
    async close() {
      state.closed = true;
      state.closing.abort();
      state.wake?.();
      await done;
    },
  };
}
