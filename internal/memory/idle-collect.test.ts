// The idle collection: once after the start and once after each burst of
// activity, only when the registry has been quiet for quietMs, never while
// activity goes on; and the real V8 extension shrinks a grown heap.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AGING_COLLECTIONS, exposedGc, startIdleCollector, type CollectGarbage } from './idle-collect.ts';

const QUIET_MS = 80;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const RUN = Array.from({ length: AGING_COLLECTIONS }, () => ({ type: 'major', flavor: 'last-resort' }));

function counting(): { collect: CollectGarbage; calls: Array<Parameters<CollectGarbage>[0]> } {
  const calls: Array<Parameters<CollectGarbage>[0]> = [];
  return { collect: (options) => void calls.push(options), calls };
}

test('collects once after the start (a run of AGING_COLLECTIONS), once quiet, and not again while nothing happens', async (t) => {
  const { collect, calls } = counting();
  const collector = startIdleCollector({ quietMs: QUIET_MS, collect });
  t.after(() => collector.stop());
  await sleep(QUIET_MS / 2);
  assert.equal(calls.length, 0, 'not before the quiet time');
  await sleep(QUIET_MS * 2);
  assert.deepEqual(calls, RUN);
  await sleep(QUIET_MS * 2);
  assert.equal(calls.length, AGING_COLLECTIONS, 'nothing new happened: no second run');
});

test('activity holds the collection off until it stops, then one collection follows', async (t) => {
  const { collect, calls } = counting();
  const collector = startIdleCollector({ quietMs: QUIET_MS, collect });
  t.after(() => collector.stop());
  for (let i = 0; i < 8; i++) {
    collector.activity();
    await sleep(QUIET_MS / 4);
  }
  assert.equal(calls.length, 0, 'never while requests keep coming');
  await sleep(QUIET_MS * 2);
  assert.equal(calls.length, AGING_COLLECTIONS);
  collector.activity();
  await sleep(QUIET_MS * 2);
  assert.equal(calls.length, 2 * AGING_COLLECTIONS, 'a later burst is followed by one more run');
});

test('a request during a run ends it at once; the next quiet period runs it whole', async (t) => {
  let calls = 0;
  const collector = startIdleCollector({
    quietMs: QUIET_MS,
    collect: () => {
      calls++;
      if (calls === 2) collector.activity();
    },
  });
  t.after(() => collector.stop());
  await sleep(QUIET_MS * 1.5);
  assert.equal(calls, 2, 'no collection after the request');
  await sleep(QUIET_MS * 2);
  assert.equal(calls, 2 + AGING_COLLECTIONS);
});

test('stop() ends it: no collection after', async () => {
  const { collect, calls } = counting();
  const collector = startIdleCollector({ quietMs: QUIET_MS, collect });
  collector.stop();
  await sleep(QUIET_MS * 2);
  assert.equal(calls.length, 0);
});

test('reports how long a run took and the heap before and after it', async (t) => {
  const heaps = [30, 12];
  const seen: Array<{ heapBefore: number; heapAfter: number }> = [];
  const collector = startIdleCollector({
    quietMs: QUIET_MS,
    collect: () => {},
    heapBytes: () => heaps.shift() ?? 0,
    onCollected: ({ ms, heapBefore, heapAfter }) => {
      assert.ok(ms >= 0);
      seen.push({ heapBefore, heapAfter });
    },
  });
  t.after(() => collector.stop());
  await sleep(QUIET_MS * 2);
  assert.deepEqual(seen, [{ heapBefore: 30, heapAfter: 12 }]);
});

test('a quiet time that is not a positive number is refused', () => {
  for (const quietMs of [0, -1, Number.NaN]) assert.throws(() => startIdleCollector({ quietMs, collect: () => {} }), /quietMs must be positive/);
});

test("V8's extension: absent without --expose-gc; with it, a grown heap is collected down", async () => {
  const { execFileSync } = await import('node:child_process');
  const script = [
    `const { exposedGc } = await import(${JSON.stringify(new URL('./idle-collect.ts', import.meta.url).href)});`,
    'const gc = exposedGc();',
    "if (gc === undefined) { console.log('none'); process.exit(0); }",
    // Grow the heap with short-lived garbage and a retained middle, then let it go.
    'let keep = []; for (let i = 0; i < 400; i++) { keep.push(new Array(10000).fill(i)); if (keep.length > 100) keep.shift(); }',
    'keep = [];',
    'const before = process.memoryUsage().heapTotal;',
    "gc({ type: 'major', flavor: 'last-resort' });",
    'console.log(before, process.memoryUsage().heapTotal);',
  ].join('\n');
  const run = (args: string[]): string => execFileSync(process.execPath, [...args, '--input-type=module', '-e', script], { encoding: 'utf8' }).trim();
  assert.equal(run([]), 'none');
  const [before = 0, after = 0] = run(['--expose-gc']).split(' ').map(Number);
  assert.ok(after < before * 0.8, `heap ${before} -> ${after} bytes: collected down`);
  assert.equal(exposedGc() === undefined, !('gc' in globalThis));
});

test("a run of the real V8's collections flushes the bytecode of code that ran only at the start; its first collection alone does not", async () => {
  const { execFileSync } = await import('node:child_process');
  const script = [
    `const { exposedGc, startIdleCollector } = await import(${JSON.stringify(new URL('./idle-collect.ts', import.meta.url).href)});`,
    'const gc = exposedGc();',
    // A function with about 900 KB of bytecode, run once, as start-up code is.
    "const body = Array.from({ length: 3000 }, (_, i) => `x = (x * ${i + 7} + ${i}) % 1000003;`).join('\\n');",
    "globalThis.startOnly = new Function('x', body + '\\nreturn x;');",
    'globalThis.startOnly(1);',
    'const inUse = [];',
    // The collector's timer does not keep a process alive: this does, until the run is over.
    'const alive = setTimeout(() => {}, 10_000);',
    'const collector = startIdleCollector({',
    '  quietMs: 20,',
    '  collect: (options) => { gc(options); inUse.push(process.memoryUsage().heapUsed); },',
    '  onCollected: () => { collector.stop(); clearTimeout(alive); console.log(inUse.join(" ")); },',
    '});',
  ].join('\n');
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' }).trim();
  const inUse = out.split(' ').map(Number);
  assert.equal(inUse.length, AGING_COLLECTIONS, out);
  const [first = 0] = inUse;
  const last = inUse.at(-1) ?? 0;
  assert.ok(first - last > 500_000, `heap in use after the first collection ${first}, after the run ${last} bytes: the bytecode was flushed`);
});
