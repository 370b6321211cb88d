// The idle collection: once after the start and once after each burst of
// activity, only when the registry has been quiet for quietMs, never while
// activity goes on; and the real V8 extension shrinks a grown heap.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { exposedGc, startIdleCollector, type CollectGarbage } from './idle-collect.ts';

const QUIET_MS = 80;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function counting(): { collect: CollectGarbage; calls: Array<Parameters<CollectGarbage>[0]> } {
  const calls: Array<Parameters<CollectGarbage>[0]> = [];
  return { collect: (options) => void calls.push(options), calls };
}

test('collects once after the start, once quiet, and not again while nothing happens', async (t) => {
  const { collect, calls } = counting();
  const collector = startIdleCollector({ quietMs: QUIET_MS, collect });
  t.after(() => collector.stop());
  await sleep(QUIET_MS / 2);
  assert.equal(calls.length, 0, 'not before the quiet time');
  await sleep(QUIET_MS * 2);
  assert.deepEqual(calls, [{ type: 'major', flavor: 'last-resort' }]);
  await sleep(QUIET_MS * 2);
  assert.equal(calls.length, 1, 'nothing new happened: no second collection');
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
  assert.equal(calls.length, 1);
  collector.activity();
  await sleep(QUIET_MS * 2);
  assert.equal(calls.length, 2, 'a later burst is followed by one more');
});

test('stop() ends it: no collection after', async () => {
  const { collect, calls } = counting();
  const collector = startIdleCollector({ quietMs: QUIET_MS, collect });
  collector.stop();
  await sleep(QUIET_MS * 2);
  assert.equal(calls.length, 0);
});

test('reports how long a collection took and the heap before and after', async (t) => {
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
