// The load generator of `npm run bench:load`, run as its own process (so that
// its event loop neither slows nor times the agent's) in one of two modes:
//
//   node load-client.ts streams <url> <connections> <seconds>
//     `connections` closed-loop workers, each GETting the URL and reading the
//     whole body at full speed, again and again; after any other answer (503,
//     or 404: not here) a worker waits
//     100 ms (as containerd would have moved on to the next host).
//   node load-client.ts rate <url> <requestsPerSecond> <seconds> [method]
//     open loop: HEAD (default) requests started at a fixed rate whatever the
//     answers, so that a slow server is not excused (no coordinated
//     omission); latency counts from the scheduled start.
//
// Prints one JSON line (LoadResult) on stdout at the end. Every request loop
// is bounded in time; in-flight requests get at most DRAIN_MS after the end.
import { Agent, request, type IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { percentile } from './stats.ts';

export interface LoadResult {
  mode: 'streams' | 'rate';
  requests: number;
  /** Answers by status code. */
  statuses: Record<string, number>;
  /** Failures without a usable answer, by reason (reset, timeout, short body, ...). */
  errors: Record<string, number>;
  /** Requests not started because too many were outstanding (rate mode). */
  skipped: number;
  /** Redirects followed (as containerd follows them). */
  redirects: number;
  bodyBytes: number;
  seconds: number;
  /** Latency of complete requests (whole body), ms, sorted. */
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  /** Time to the response headers, ms. */
  headersMs: { p50: number; p99: number };
}

const HEADERS_TIMEOUT_MS = 30_000;
const BODY_TIMEOUT_MS = 120_000;
const DRAIN_MS = 30_000;
const MAX_OUTSTANDING = 5000;
const BACKOFF_AFTER_REFUSAL_MS = 100;

interface Tally {
  requests: number;
  statuses: Map<number, number>;
  errors: Map<string, number>;
  latencies: number[];
  headers: number[];
  bodyBytes: number;
  skipped: number;
  /** Redirects followed. */
  redirects: number;
}

/** Where and how the requests of one loop go, and what counts them. */
interface Target {
  agent: Agent;
  url: URL;
  method: 'GET' | 'HEAD';
  tally: Tally;
}

function bump<K>(map: Map<K, number>, key: K): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

/** A redirect, as containerd (Go's client) follows one: the same method to the Location. */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Redirects followed per request at most (Go's client: 10). */
const MAX_REDIRECTS = 10;

/** One request; resolves with its status (0 on failure) once it is over, counting into `target.tally`; redirects are followed. */
function once(target: Target, startedAt = performance.now()): Promise<number> {
  target.tally.requests++;
  return exchange(target, startedAt, 0);
}

function exchange({ agent, url, method, tally }: Target, startedAt: number, hops: number): Promise<number> {
  return new Promise((resolve) => {
    let settled = false;
    const fail = (reason: string): void => {
      clearTimeout(headersTimer);
      if (settled) return;
      settled = true;
      bump(tally.errors, reason);
      resolve(0);
    };
    const req = request({ agent, host: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, method });
    const headersTimer = setTimeout(() => {
      fail('headers-timeout');
      req.destroy();
    }, HEADERS_TIMEOUT_MS);
    headersTimer.unref();
    req.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? 'request-error'));
    req.on('response', (res: IncomingMessage) => {
      clearTimeout(headersTimer);
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if (REDIRECTS.has(status) && location !== undefined && hops < MAX_REDIRECTS) {
        settled = true;
        tally.redirects++;
        res.resume();
        res.on('end', () => resolve(exchange({ agent, url: new URL(location, url), method, tally }, startedAt, hops + 1)));
        res.on('error', () => resolve(exchange({ agent, url: new URL(location, url), method, tally }, startedAt, hops + 1)));
        return;
      }
      tally.headers.push(performance.now() - startedAt);
      const expected = Number(res.headers['content-length']);
      let bytes = 0;
      const bodyTimer = setTimeout(() => {
        fail('body-timeout');
        res.destroy();
      }, BODY_TIMEOUT_MS);
      bodyTimer.unref();
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      res.on('error', () => {});
      res.on('close', () => {
        clearTimeout(bodyTimer);
        if (settled) return;
        const whole = res.complete && (method === 'HEAD' || !Number.isFinite(expected) || bytes === expected);
        if (!whole) return fail(status === 200 ? 'short-body' : `short-body-${status}`);
        settled = true;
        tally.bodyBytes += bytes;
        bump(tally.statuses, status);
        if (status === 200) tally.latencies.push(performance.now() - startedAt);
        resolve(status);
      });
    });
    req.end();
  });
}

async function streams(url: URL, connections: number, seconds: number, tally: Tally): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const deadline = performance.now() + seconds * 1000;
  const target: Target = { agent, url, method: 'GET', tally };
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const status = await once(target);
      if (status !== 200) await sleep(BACKOFF_AFTER_REFUSAL_MS);
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  agent.destroy();
}

async function rate(target: Omit<Target, 'agent'>, perSecond: number, seconds: number): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const tally = target.tally;
  const start = performance.now();
  const pending = new Set<Promise<number>>();
  let started = 0;
  for (let elapsedMs = 0; elapsedMs < seconds * 1000; elapsedMs = performance.now() - start) {
    // The requests whose time has come, none before it: with 10 ms ticks that
    // each started the next tick's requests, up to 10 ms early, latencies
    // counted from the schedule came out negative (bench:load's HEAD p50
    // -1.9 ms). Now a request starts at most a timer's lateness after its time.
    const due = Math.floor((elapsedMs / 1000) * perSecond) + 1;
    for (; started < due; started++) {
      const scheduledAt = start + (started / perSecond) * 1000;
      if (pending.size >= MAX_OUTSTANDING) {
        tally.skipped++;
        continue;
      }
      const p = once({ ...target, agent }, scheduledAt);
      pending.add(p);
      void p.then(() => pending.delete(p));
    }
    const wait = start + (started / perSecond) * 1000 - performance.now();
    if (wait > 0) await sleep(wait);
  }
  // (An unref'd timer: once everything settled, nothing waits for it.)
  await Promise.race([Promise.all(pending), sleep(DRAIN_MS, undefined, { ref: false })]);
  agent.destroy();
}

async function main(argv: string[]): Promise<void> {
  const [mode, rawUrl, rawN, rawSeconds, rawMethod] = argv;
  if ((mode !== 'streams' && mode !== 'rate') || rawUrl === undefined || rawN === undefined || rawSeconds === undefined) {
    throw new Error('usage: load-client.ts streams|rate <url> <connections|perSecond> <seconds> [GET|HEAD]');
  }
  const url = new URL(rawUrl);
  const n = Number(rawN);
  const seconds = Number(rawSeconds);
  if (!(n > 0) || !(seconds > 0)) throw new Error('connections/rate and seconds must be positive numbers');
  const tally: Tally = { requests: 0, statuses: new Map(), errors: new Map(), latencies: [], headers: [], bodyBytes: 0, skipped: 0, redirects: 0 };
  const begin = performance.now();
  if (mode === 'streams') await streams(url, n, seconds, tally);
  else await rate({ url, method: rawMethod === 'GET' ? 'GET' : 'HEAD', tally }, n, seconds);
  const latencies = tally.latencies.sort((a, b) => a - b);
  const headers = tally.headers.sort((a, b) => a - b);
  const round = (ms: number): number => Number(ms.toFixed(2));
  const result: LoadResult = {
    mode,
    requests: tally.requests,
    statuses: Object.fromEntries([...tally.statuses].map(([status, count]) => [String(status), count])),
    errors: Object.fromEntries(tally.errors),
    skipped: tally.skipped,
    redirects: tally.redirects,
    bodyBytes: tally.bodyBytes,
    seconds: round((performance.now() - begin) / 1000),
    latencyMs: {
      p50: round(percentile(latencies, 0.5)),
      p90: round(percentile(latencies, 0.9)),
      p99: round(percentile(latencies, 0.99)),
      max: round(latencies[latencies.length - 1] ?? 0),
    },
    headersMs: { p50: round(percentile(headers, 0.5)), p99: round(percentile(headers, 0.99)) },
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`load-client: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
