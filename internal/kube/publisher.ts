// Publishes the agent's status as annotations on its own pod
// (internal/owners/status.ts): a JSON merge patch with only the changed
// annotations (null for status annotations no longer wanted), debounced and
// coalesced to at most one patch per window, retried with backoff. API
// errors are logged and never reach the caller.
import type { KubeClient } from './client.ts';
import { isStatusAnnotation } from '../owners/status.ts';
import type { Logger } from '../log/logger.ts';
import { parsePod } from './objects.ts';
import { backoffMs, callSignal, describeError, isRetryable, retryAfterMs, statusOf, type BackoffOptions } from './retry.ts';

export interface PublisherOptions {
  client: KubeClient;
  namespace: string;
  podName: string;
  logger: Logger;
  /** At most one patch per window; a change waits at most this long before it is sent. */
  debounceMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Timeout of each API request. */
  requestTimeoutMs?: number;
  /** After each successful patch: time since the oldest change it carries, and the patch body's size. */
  onPublished?(latencyMs: number, bytes: number): void;
  /** After each failed read or patch (it is retried unless the API rejected it as invalid). */
  onFailure?(err: unknown): void;
}

export interface Publisher {
  /** The full desired set of mirra's status annotations; returns at once. */
  publish(annotations: Readonly<Record<string, string>>): void;
  /** Sends what is pending now (no debounce) and waits for that one attempt. */
  flush(): Promise<void>;
  /** Cancels pending work and aborts a request in flight. */
  close(): Promise<void>;
}

type Annotations = Record<string, string>;

function ownAnnotations(annotations: Readonly<Record<string, string>>): Annotations {
  const out: Annotations = {};
  for (const [name, value] of Object.entries(annotations)) if (isStatusAnnotation(name)) out[name] = value;
  return out;
}

/** The status annotations of the pod the API returned (parsePod validates the JSON). */
function podStatus(pod: unknown): Annotations {
  return { ...parsePod(pod)?.annotations };
}

/**
 * The annotations part of a JSON merge patch that turns the status in `prev`
 * into `next`: changed or new annotations with their value, status
 * annotations that are gone as null. Other annotations are never touched.
 * Empty object: nothing to publish.
 */
export function diffAnnotations(
  prev: Readonly<Record<string, string | undefined>> | undefined,
  next: Readonly<Record<string, string>>,
): Record<string, string | null> {
  const patch: Record<string, string | null> = {};
  for (const [name, value] of Object.entries(next)) if (prev?.[name] !== value) patch[name] = value;
  for (const name of Object.keys(prev ?? {})) if (isStatusAnnotation(name) && !Object.hasOwn(next, name)) patch[name] = null;
  return patch;
}

function sameAnnotations(a: Readonly<Annotations>, b: Readonly<Annotations>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => b[k] === a[k]);
}

/** The state of one publisher, shared by the functions below. */
interface PublisherState {
  readonly options: PublisherOptions;
  readonly log: Logger;
  readonly debounceMs: number;
  readonly backoff: BackoffOptions;
  readonly requestTimeoutMs: number;
  readonly podPath: string;
  readonly closing: AbortController;
  desired: Annotations | undefined;
  /** What the pod carries, as far as we know; undefined: read the pod before the next patch. */
  current: Annotations | undefined;
  /** publish() was called since the last attempt took the desired set. */
  dirty: boolean;
  /** When the oldest change not yet on the pod was published. */
  pendingSince: number | undefined;
  attempt: number;
  timer: NodeJS.Timeout | undefined;
  running: Promise<void> | undefined;
  closed: boolean;
}

function publisherState(options: PublisherOptions): PublisherState {
  const { namespace, podName } = options;
  return {
    options,
    log: options.logger.child({ component: 'kube-publisher', pod: podName }),
    debounceMs: options.debounceMs ?? 2000,
    backoff: { minBackoffMs: options.minBackoffMs ?? 500, maxBackoffMs: options.maxBackoffMs ?? 30_000 },
    requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
    podPath: `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(podName)}`,
    closing: new AbortController(),
    desired: undefined,
    current: undefined,
    dirty: false,
    pendingSince: undefined,
    attempt: 0,
    timer: undefined,
    running: undefined,
    closed: false,
  };
}

function schedule(state: PublisherState, delayMs: number): void {
  if (state.closed || state.timer !== undefined || state.running !== undefined) return;
  state.timer = setTimeout(() => run(state), delayMs);
  state.timer.unref();
}

function clearTimer(state: PublisherState): void {
  if (state.timer !== undefined) clearTimeout(state.timer);
  state.timer = undefined;
}

async function attemptOnce(state: PublisherState, target: Annotations, since: number): Promise<void> {
  const { client } = state.options;
  if (state.current === undefined) {
    state.current = podStatus(await client.get(state.podPath, {}, callSignal(state.closing.signal, state.requestTimeoutMs)));
  }
  const patch = diffAnnotations(state.current, target);
  if (Object.keys(patch).length === 0) return;
  const body = { metadata: { annotations: patch } };
  const bytes = Buffer.byteLength(JSON.stringify(body));
  const signal = callSignal(state.closing.signal, state.requestTimeoutMs);
  state.current = podStatus(await client.mergePatch(state.podPath, body, signal));
  const latencyMs = Date.now() - since;
  state.log.debug({ changed: Object.keys(patch).length, bytes, latencyMs }, 'status published');
  state.options.onPublished?.(latencyMs, bytes);
}

/** An attempt failed: read the pod again next time, and retry with backoff unless the API rejected the patch as invalid. */
function onAttemptFailed(state: PublisherState, err: unknown, since: number): void {
  if (state.closed) return;
  state.current = undefined; // the outcome is unknown: read the pod again before the next patch
  state.attempt++;
  state.pendingSince = Math.min(since, state.pendingSince ?? since);
  state.options.onFailure?.(err);
  if (!isRetryable(err)) {
    state.log.error({ err, status: statusOf(err), detail: describeError(err) }, 'the API rejected the status patch; not retried until the status changes');
    return;
  }
  state.dirty = true;
  const { backoff } = state;
  const delayMs = Math.max(backoffMs(state.attempt, backoff), Math.min(retryAfterMs(err) ?? 0, backoff.maxBackoffMs));
  state.log.warn(
    { err, status: statusOf(err), detail: describeError(err), attempt: state.attempt, retryInMs: delayMs },
    'publishing the status failed; retrying',
  );
  state.running = undefined;
  schedule(state, delayMs);
}

function run(state: PublisherState): void {
  state.timer = undefined;
  if (state.closed || state.desired === undefined || state.running !== undefined) return;
  const target = state.desired;
  const since = state.pendingSince ?? Date.now();
  state.dirty = false;
  state.pendingSince = undefined;
  state.running = attemptOnce(state, target, since)
    .then(() => {
      state.attempt = 0;
    })
    .catch((err: unknown) => onAttemptFailed(state, err, since))
    .finally(() => {
      state.running = undefined;
      if (state.dirty) schedule(state, state.debounceMs);
    });
}

function publish(state: PublisherState, annotations: Readonly<Record<string, string>>): void {
  if (state.closed) return;
  const next = ownAnnotations(annotations);
  const ignored = Object.keys(annotations).filter((name) => !isStatusAnnotation(name));
  if (ignored.length > 0) state.log.warn({ ignored }, 'publish: ignoring annotations that are not part of the status');
  if (state.desired !== undefined && sameAnnotations(state.desired, next)) return;
  state.desired = next;
  state.dirty = true;
  state.pendingSince ??= Date.now();
  schedule(state, state.debounceMs);
}

export function createPublisher(options: PublisherOptions): Publisher {
  const state = publisherState(options);
  return {
    publish: (annotations) => publish(state, annotations),
    async flush() {
      if (state.running !== undefined) await state.running;
      if (state.closed || !state.dirty) return;
      clearTimer(state);
      run(state);
      await state.running;
    },
    async close() {
      state.closed = true;
      clearTimer(state);
      state.closing.abort();
      await state.running;
    },
  };
}
