// Memory-reducing garbage collections once the agent has been quiet for a
// while. After a burst of work V8 keeps the heap it grew (the young
// generation at its largest, freed old-space pages kept for reuse) for as
// long as the process stays quiet: an idle agent allocates too little for a
// collection to start, and V8's own memory reducer only starts after a
// collection. So an agent idled at 66.4 MiB of RSS with 11.3 MiB of its
// 18.9 MiB heap in use. With one `gc({ type: 'major', flavor: 'last-resort' })`
// (full collections that also shrink the young generation and give pooled
// pages back) after its start: 62.2-62.6 MiB, heap 10.7-11.2 MiB (two runs
// each, 2026-12-06, the idle probe of issue 16; a plain gc() left the heap
// as it was). It cost one pause per quiet period: 33 ms in that agent.
//
// The quiet agent also keeps the bytecode of code it ran only at its start
// (flags, configuration, routes, the first walk): V8 flushes a function's
// bytecode only once it has not run through several major collections
// (it ages at each), and an idle agent makes no other. So the idle
// collection is four, one a turn, given up as soon as a request comes: idle
// RSS 63.0-63.2 -> 62.3 MiB, heap in use 9.4 -> 8.1 MiB (the idle probe of
// issue 16, 2026-12-06). Two runs each of three to six: three flushed the
// bytecode (8.2 MiB in use) but kept its pages (heap 11.2 MiB, RSS
// 62.9-63.3); four to six gave them back (heap 9.9-10.4 MiB, RSS 62.0-62.3).
//
// The collection needs V8's gc extension: `--expose-gc` in NODE_OPTIONS (the
// chart's nodeOptions and the image have it). Without it nothing is collected.

/** Options of one collection: the shape of V8's gc extension's argument. */
interface GcOptions {
  type: 'major';
  flavor: 'last-resort';
}

export type CollectGarbage = (options: GcOptions) => void;

/** V8's gc extension, when the process was started with --expose-gc. */
export function exposedGc(): CollectGarbage | undefined {
  const gc: unknown = (globalThis as { gc?: unknown }).gc;
  if (typeof gc !== 'function') return undefined;
  const extension = gc as CollectGarbage;
  return (options) => extension(options);
}

export interface IdleCollectorOptions {
  /** How long nothing must have happened before a collection. */
  quietMs: number;
  collect: CollectGarbage;
  /** After each run of collections: how long they took together and the heap before and after (bytes). */
  onCollected?(result: { ms: number; heapBefore: number; heapAfter: number }): void;
  /** Heap size now (bytes), for onCollected (default process.memoryUsage().heapTotal). */
  heapBytes?(): number;
}

export interface IdleCollector {
  /** Something happened (a request): the next quiet period ends in a collection. */
  activity(): void;
  stop(): void;
}

/** State of one collector, changed only by the functions below. */
interface CollectorState {
  readonly options: IdleCollectorOptions;
  /** Something happened since the last collection (the start counts). */
  dirty: boolean;
  lastActivityMs: number;
  /** The run's next collection, while one is under way. */
  pending: NodeJS.Immediate | undefined;
}

/** Major collections in a row after which bytecode not run since is flushed and its pages given back (measured: above). */
export const AGING_COLLECTIONS = 4;

/** One run of collections: what onCollected is told once it ends. */
interface CollectionRun {
  heapBefore: number;
  /** Time spent collecting, summed over the run's turns. */
  ms: number;
  done: number;
}

/** The heap's size now, as the options measure it (default: V8's heap total). */
function heapNow(s: CollectorState): number {
  return s.options.heapBytes?.() ?? process.memoryUsage().heapTotal;
}

/** One collection of the run, then the next in a later turn, unless activity came in between. */
function collectStep(s: CollectorState, run: CollectionRun): void {
  s.pending = undefined;
  if (s.dirty) return; // activity since: the next quiet period starts a new run
  const { collect, onCollected } = s.options;
  const start = performance.now();
  collect({ type: 'major', flavor: 'last-resort' });
  run.ms += performance.now() - start;
  run.done++;
  if (run.done < AGING_COLLECTIONS) {
    s.pending = setImmediate(collectStep, s, run);
    return;
  }
  onCollected?.({ ms: run.ms, heapBefore: run.heapBefore, heapAfter: heapNow(s) });
}

function collectNow(s: CollectorState): void {
  s.dirty = false;
  collectStep(s, { heapBefore: heapNow(s), ms: 0, done: 0 });
}

function check(s: CollectorState): void {
  if (s.dirty && s.pending === undefined && performance.now() - s.lastActivityMs >= s.options.quietMs) collectNow(s);
}

/** Runs the collections once after the start and once after every later activity, as soon as `quietMs` passed without activity. */
export function startIdleCollector(options: IdleCollectorOptions): IdleCollector {
  if (!(options.quietMs > 0)) throw new Error(`idle collector: quietMs must be positive, got ${options.quietMs}`);
  const s: CollectorState = { options, dirty: true, lastActivityMs: performance.now(), pending: undefined };
  // Checked at a quarter of the quiet time: a collection comes at most a quarter late.
  const timer = setInterval(() => check(s), Math.max(1, Math.floor(options.quietMs / 4)));
  timer.unref();
  return {
    activity() {
      s.dirty = true;
      s.lastActivityMs = performance.now();
    },
    stop() {
      clearInterval(timer);
      if (s.pending !== undefined) clearImmediate(s.pending);
    },
  };
}
