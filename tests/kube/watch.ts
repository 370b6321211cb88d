// Watch streams: chunked newline-delimited JSON watch events, started from a
// resourceVersion like the real API server's watch cache:
//   ""/"0": synthetic ADDED events for what exists now, then changes;
//   "N": the history after N, or one ERROR event (410 Expired) when N is
//        older than the bounded history, then the stream ends.
// Selector transitions (an object starts or stops matching) become ADDED or
// DELETED, bookmarks are sent periodically when allowed, timeoutSeconds ends
// the stream cleanly, and dropAll() cuts every stream abruptly.
import type { ServerResponse } from 'node:http';
import type { KubeObject, Store, StoreEvent } from './store.ts';
import { apiVersionOf, type ResourceDef } from './resources.ts';
import { matchesFields, matchesLabels, type FieldRequirement, type LabelRequirement } from './selectors.ts';
import { gone } from './status.ts';

/** A slow reader is cut off when this much output is queued for it (the real server also drops such watchers). */
const MAX_QUEUED_BYTES = 32 * 1024 * 1024;

export interface WatchRequest {
  def: ResourceDef;
  /** '' for all namespaces (and for cluster-scoped resources). */
  namespace: string;
  labels: LabelRequirement[];
  fields: FieldRequirement[];
  resourceVersion: string;
  allowBookmarks: boolean;
  /**
   * true: synthetic ADDED events for what exists, then (with bookmarks) a bookmark marked
   * "k8s.io/initial-events-end", whatever the resourceVersion; false: none; undefined: per resourceVersion.
   */
  sendInitialEvents: boolean | undefined;
  timeoutMs: number;
  bookmarkIntervalMs: number;
  /** Turns an object (or a bookmark) into what goes on the wire: the object itself, or a Table. */
  encode: (obj: KubeObject) => unknown;
  contentType: string;
}

export interface WatchRegistry {
  serve(request: WatchRequest, res: ServerResponse): void;
  /** Ends every open watch stream abruptly (connection reset, no terminating chunk). */
  dropAll(): void;
  openCount(): number;
  /** How many watches were answered with the 410 Expired ERROR event. */
  expiredCount(): number;
}

function withVersion(obj: KubeObject, rv: number): KubeObject {
  return { ...obj, metadata: { ...obj.metadata, resourceVersion: String(rv) } };
}

export function createWatchRegistry(store: Store): WatchRegistry {
  const open = new Set<ServerResponse>();
  let expired = 0;

  function serve(request: WatchRequest, res: ServerResponse): void {
    const { def } = request;
    const inScope = (obj: KubeObject): boolean => request.namespace === '' || obj.metadata['namespace'] === request.namespace;
    const matches = (obj: KubeObject | undefined): boolean =>
      obj !== undefined &&
      inScope(obj) &&
      matchesLabels(request.labels, obj.metadata['labels'] as Record<string, string> | undefined) &&
      matchesFields(request.fields, obj);

    const write = (type: string, obj: unknown): void => {
      if (res.destroyed || res.writableEnded) return;
      res.write(`${JSON.stringify({ type, object: obj })}\n`);
      if (res.writableLength > MAX_QUEUED_BYTES) res.destroy();
    };
    const send = (event: StoreEvent): void => {
      if (event.def !== def) return;
      const now = matches(event.object);
      if (event.type === 'MODIFIED') {
        const before = matches(event.previous);
        if (now && before) write('MODIFIED', request.encode(event.object));
        else if (now) write('ADDED', request.encode(event.object));
        else if (before && event.previous !== undefined) write('DELETED', request.encode(withVersion(event.previous, event.resourceVersion)));
      } else if (now) {
        write(event.type, request.encode(event.object));
      }
    };
    const bookmark = (annotations?: Record<string, string>): void => {
      const metadata: Record<string, unknown> = { resourceVersion: String(store.currentResourceVersion()) };
      if (annotations !== undefined) metadata['annotations'] = annotations;
      write('BOOKMARK', request.encode({ kind: def.kind, apiVersion: apiVersionOf(def), metadata }));
    };

    const rvText = request.resourceVersion;
    const fromNow = rvText === '' || rvText === '0';
    const after = fromNow ? 0 : Number(rvText);
    const initial = request.sendInitialEvents ?? fromNow;
    const replay = fromNow || initial ? [] : store.eventsSince(after);

    res.writeHead(200, { 'Content-Type': request.contentType, 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    if (replay === 'expired') {
      expired++;
      const oldest = store.oldestResourceVersion() + 1;
      write('ERROR', gone(`too old resource version: ${after} (${oldest})`));
      res.end();
      return;
    }

    // Everything below runs in one tick with the subscription: no event can slip between.
    if (initial) {
      for (const obj of store.list(def, request.namespace)) if (matches(obj)) write('ADDED', request.encode(obj));
      if (request.sendInitialEvents === true && request.allowBookmarks) bookmark({ 'k8s.io/initial-events-end': 'true' });
    }
    for (const event of replay) send(event);
    const unsubscribe = store.subscribe(send);
    open.add(res);

    const timers: NodeJS.Timeout[] = [setTimeout(() => res.end(), request.timeoutMs)];
    if (request.allowBookmarks) timers.push(setInterval(() => bookmark(), request.bookmarkIntervalMs));
    const cleanup = (): void => {
      unsubscribe();
      open.delete(res);
      for (const t of timers) clearTimeout(t);
    };
    res.once('close', cleanup);
    res.once('finish', cleanup);
  }

  return {
    serve,
    dropAll() {
      for (const res of [...open]) {
        open.delete(res);
        res.destroy();
        res.socket?.destroy();
      }
    },
    openCount: () => open.size,
    expiredCount: () => expired,
  };
}
