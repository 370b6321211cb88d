// containerd image and content events as typed changes, over a subscription
// that survives containerd restarts.
//
// After every (re)connection a `resync` change is emitted: events sent while
// disconnected are lost, so consumers must re-list. containerd sends no
// response headers on Subscribe until the first event, so "connected" means:
// the stream is open and the channel is READY `settleMs` after it was opened.
// Note (containerd 1.6): a pull adds content without content events, and
// garbage collection deletes content without events; image create/update/
// delete events do arrive, and an explicit content delete (`ctr content rm`)
// sends /content/delete.
import type { Logger } from '../log/logger.ts';
import { parseDigest } from '../oci/digest.ts';
import type { EventSubscriber, Subscription } from './client.ts';

/** What watching needs of the client: the events service and the namespace. */
export type EventClient = EventSubscriber & { readonly namespace: string };
import { field, type Envelope } from './messages.ts';
import { EVENT_PAYLOADS } from './event-payloads.ts';

export type ContainerdChange =
  { kind: 'image-created' | 'image-updated' | 'image-deleted'; name: string } | { kind: 'content-deleted'; digest: string } | { kind: 'resync' };

export interface WatchOptions {
  client: EventClient;
  logger: Logger;
  onChange(change: ContainerdChange): void;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Delay between opening the stream and checking that the channel is READY (then polled at this interval). */
  settleMs?: number;
}

export interface ChangeWatcher {
  /** True between a resync and the next disconnection. */
  readonly connected: boolean;
  /** Stops watching: cancels the stream and every timer. */
  close(): void;
}

/** containerd filters: this namespace's image and content topics. */
export function eventFilters(namespace: string): string[] {
  const ns = JSON.stringify(namespace);
  return [`namespace==${ns},topic~="/images/"`, `namespace==${ns},topic~="/content/"`];
}

const IMAGE_KINDS: ReadonlyMap<string, 'image-created' | 'image-updated' | 'image-deleted'> = new Map([
  [EVENT_PAYLOADS.imageCreate, 'image-created'],
  [EVENT_PAYLOADS.imageUpdate, 'image-updated'],
  [EVENT_PAYLOADS.imageDelete, 'image-deleted'],
]);

/** The change an envelope describes, or undefined for other namespaces, topics and malformed payloads. */
export function decodeChange(client: Pick<EventClient, 'namespace' | 'decodeEvent'>, envelope: Envelope): ContainerdChange | undefined {
  if (envelope.namespace !== client.namespace || envelope.event === undefined) return undefined;
  let decoded;
  try {
    decoded = client.decodeEvent(envelope.event);
  } catch {
    return undefined;
  }
  if (decoded === undefined) return undefined;
  const imageKind = IMAGE_KINDS.get(decoded.type);
  if (imageKind !== undefined) {
    const name = field(decoded.message, 'name');
    return typeof name === 'string' && name !== '' ? { kind: imageKind, name } : undefined;
  }
  if (decoded.type === EVENT_PAYLOADS.contentDelete) {
    const digest = field(decoded.message, 'digest');
    return typeof digest === 'string' && parseDigest(digest) !== undefined ? { kind: 'content-deleted', digest } : undefined;
  }
  return undefined;
}

/** Exponential backoff with jitter: between half and all of min(max, initial * 2^attempt). */
export function backoffMs(attempt: number, initialMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

export function watchChanges(options: WatchOptions): ChangeWatcher {
  const { client } = options;
  const log = options.logger.child({ component: 'containerd-events' });
  const initialMs = options.initialBackoffMs ?? 200;
  const maxMs = options.maxBackoffMs ?? 10_000;
  const settleMs = options.settleMs ?? 100;
  let closed = false;
  let connected = false;
  let attempt = 0;
  let generation = 0;
  let subscription: Subscription | undefined;
  let timer: NodeJS.Timeout | undefined;

  const emit = (change: ContainerdChange): void => {
    try {
      options.onChange(change);
    } catch (err) {
      log.warn({ err, change }, 'containerd change handler failed');
    }
  };

  const later = (fn: () => void, ms: number): void => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
    timer.unref();
  };

  const connect = (): void => {
    if (closed) return;
    const current = ++generation;
    try {
      subscription = subscribe(current);
    } catch (err) {
      log.warn({ err }, 'cannot subscribe to containerd events; retrying');
      later(connect, backoffMs(attempt++, initialMs, maxMs));
      return;
    }
    awaitReady(current);
  };

  const subscribe = (current: number): Subscription =>
    client.subscribe(eventFilters(client.namespace), {
      onEnvelope(envelope) {
        const change = decodeChange(client, envelope);
        if (change !== undefined) emit(change);
      },
      onEnd(err) {
        if (closed || current !== generation) return;
        subscription = undefined;
        const wasConnected = connected;
        connected = false;
        const delayMs = backoffMs(attempt++, initialMs, maxMs);
        if (wasConnected) log.warn({ err: err.message }, 'containerd event stream lost; reconnecting');
        else log.debug({ err: err.message, delayMs }, 'containerd event stream not available; retrying');
        later(connect, delayMs);
      },
    });

  // Polls (on the unref'd timer) until the channel is READY, then emits resync.
  const awaitReady = (current: number): void => {
    later(() => {
      if (closed || current !== generation || subscription === undefined) return;
      if (!client.isReady()) {
        awaitReady(current);
        return;
      }
      connected = true;
      attempt = 0;
      log.info('containerd event stream connected');
      emit({ kind: 'resync' });
    }, settleMs);
  };

  connect();
  return {
    get connected() {
      return connected;
    },
    close() {
      closed = true;
      connected = false;
      clearTimeout(timer);
      subscription?.cancel();
      subscription = undefined;
    },
  };
}
