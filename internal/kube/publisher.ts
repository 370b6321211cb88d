// Publishes the agent's summary as annotations on its own pod: a JSON merge
// patch with only the changed annotations (null for summary annotations no
// longer wanted), debounced and coalesced to at most one patch per window,
// retried with backoff. API errors are logged and never reach the caller.
import type { KubeClient } from './client.ts';
import { diffAnnotations, isSummaryAnnotation } from '../routing/annotations.ts';
import type { Logger } from '../log/logger.ts';
import { parsePod } from './objects.ts';
import { backoffMs, callSignal, describeError, isRetryable, retryAfterMs, statusOf } from './retry.ts';

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
  /** The full desired set of mirra's summary annotations (header and shards); returns at once. */
  publish(annotations: Readonly<Record<string, string>>): void;
  /** Sends what is pending now (no debounce) and waits for that one attempt. */
  flush(): Promise<void>;
  /** Cancels pending work and aborts a request in flight. */
  close(): Promise<void>;
}

type Annotations = Record<string, string>;

function summaryOf(annotations: Readonly<Record<string, string>>): Annotations {
  const out: Annotations = {};
  for (const [name, value] of Object.entries(annotations)) if (isSummaryAnnotation(name)) out[name] = value;
  return out;
}

/** The summary annotations of the pod the API returned (parsePod validates the JSON). */
function podSummary(pod: unknown): Annotations {
  return { ...parsePod(pod)?.summary };
}

function sameAnnotations(a: Readonly<Annotations>, b: Readonly<Annotations>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => b[k] === a[k]);
}

export function createPublisher(options: PublisherOptions): Publisher {
  const { client, namespace, podName } = options;
  const log = options.logger.child({ component: 'kube-publisher', pod: podName });
  const debounceMs = options.debounceMs ?? 2000;
  const backoff = { minBackoffMs: options.minBackoffMs ?? 500, maxBackoffMs: options.maxBackoffMs ?? 30_000 };
  const requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
  const podPath = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(podName)}`;
  const closing = new AbortController();

  let desired: Annotations | undefined;
  /** What the pod carries, as far as we know; undefined: read the pod before the next patch. */
  let current: Annotations | undefined;
  /** publish() was called since the last attempt took the desired set. */
  let dirty = false;
  /** When the oldest change not yet on the pod was published. */
  let pendingSince: number | undefined;
  let attempt = 0;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let closed = false;

  const schedule = (delayMs: number): void => {
    if (closed || timer !== undefined || running !== undefined) return;
    timer = setTimeout(run, delayMs);
    timer.unref();
  };

  const clearTimer = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };

  async function attemptOnce(target: Annotations, since: number): Promise<void> {
    if (current === undefined) {
      current = podSummary(await client.get(podPath, {}, callSignal(closing.signal, requestTimeoutMs)));
    }
    const patch = diffAnnotations(current, target);
    if (Object.keys(patch).length === 0) return;
    const body = { metadata: { annotations: patch } };
    const bytes = Buffer.byteLength(JSON.stringify(body));
    const signal = callSignal(closing.signal, requestTimeoutMs);
    current = podSummary(await client.mergePatch(podPath, body, signal));
    const latencyMs = Date.now() - since;
    log.debug({ changed: Object.keys(patch).length, bytes, latencyMs }, 'summary published');
    options.onPublished?.(latencyMs, bytes);
  }

  function run(): void {
    timer = undefined;
    if (closed || desired === undefined || running !== undefined) return;
    const target = desired;
    const since = pendingSince ?? Date.now();
    dirty = false;
    pendingSince = undefined;
    running = attemptOnce(target, since)
      .then(() => {
        attempt = 0;
      })
      .catch((err: unknown) => {
        if (closed) return;
        current = undefined; // the outcome is unknown: read the pod again before the next patch
        attempt++;
        pendingSince = Math.min(since, pendingSince ?? since);
        options.onFailure?.(err);
        if (!isRetryable(err)) {
          log.error({ err, status: statusOf(err), detail: describeError(err) }, 'the API rejected the summary patch; not retried until the summary changes');
          return;
        }
        dirty = true;
        const delayMs = Math.max(backoffMs(attempt, backoff), Math.min(retryAfterMs(err) ?? 0, backoff.maxBackoffMs));
        log.warn({ err, status: statusOf(err), detail: describeError(err), attempt, retryInMs: delayMs }, 'publishing the summary failed; retrying');
        running = undefined;
        schedule(delayMs);
      })
      .finally(() => {
        running = undefined;
        if (dirty) schedule(debounceMs);
      });
  }

  return {
    publish(annotations) {
      if (closed) return;
      const next = summaryOf(annotations);
      const ignored = Object.keys(annotations).filter((name) => !isSummaryAnnotation(name));
      if (ignored.length > 0) log.warn({ ignored }, 'publish: ignoring annotations that are not part of the summary');
      if (desired !== undefined && sameAnnotations(desired, next)) return;
      desired = next;
      dirty = true;
      pendingSince ??= Date.now();
      schedule(debounceMs);
    },
    async flush() {
      if (running !== undefined) await running;
      if (closed || !dirty) return;
      clearTimer();
      run();
      await running;
    },
    async close() {
      closed = true;
      clearTimer();
      closing.abort();
      await running;
    },
  };
}
