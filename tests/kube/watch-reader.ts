// A minimal watch client for the stand-in's own tests: opens a watch URL and
// hands out the newline-delimited events one by one.
import { get, type IncomingMessage } from 'node:http';
import { createInterface } from 'node:readline';

export interface WatchEvent {
  type: string;
  object: Record<string, unknown> & { metadata?: Record<string, unknown> };
}

export interface WatchReader {
  readonly status: number;
  /** The next event; rejects when the stream ends first or after timeoutMs. */
  next(timeoutMs?: number): Promise<WatchEvent>;
  /** Resolves 'end' for a clean end of the stream, 'error' for an abrupt one. */
  readonly ended: Promise<'end' | 'error'>;
  close(): void;
}

export function openWatch(url: string): Promise<WatchReader> {
  return new Promise((resolve, reject) => {
    const req = get(url, (res: IncomingMessage) => {
      const queue: WatchEvent[] = [];
      const waiters: ((event: WatchEvent | undefined) => void)[] = [];
      let done = false;
      const finish = (): void => {
        done = true;
        for (const w of waiters.splice(0)) w(undefined);
      };
      const ended = new Promise<'end' | 'error'>((resolveEnd) => {
        res.on('error', () => resolveEnd('error'));
        res.once('close', () => resolveEnd(res.complete ? 'end' : 'error'));
      });
      void ended.then(finish);
      const lines = createInterface({ input: res });
      lines.on('error', () => undefined); // readline re-emits the response's error; `ended` reports it
      lines.on('line', (line) => {
        if (line.trim() === '') return;
        const event = JSON.parse(line) as WatchEvent;
        const waiter = waiters.shift();
        if (waiter !== undefined) waiter(event);
        else queue.push(event);
      });
      resolve({
        status: res.statusCode ?? 0,
        ended,
        close: () => req.destroy(),
        next(timeoutMs = 5000) {
          const queued = queue.shift();
          if (queued !== undefined) return Promise.resolve(queued);
          if (done) return Promise.reject(new Error('watch stream ended'));
          return new Promise((resolveNext, rejectNext) => {
            const timer = setTimeout(() => {
              const i = waiters.indexOf(onEvent);
              if (i >= 0) waiters.splice(i, 1);
              rejectNext(new Error(`no watch event within ${timeoutMs} ms`));
            }, timeoutMs);
            const onEvent = (event: WatchEvent | undefined): void => {
              clearTimeout(timer);
              if (event === undefined) rejectNext(new Error('watch stream ended'));
              else resolveNext(event);
            };
            waiters.push(onEvent);
          });
        },
      });
    });
    // Before the answer: the watch could not be opened; after it: the stream's own end handling applies.
    req.on('error', reject);
  });
}
