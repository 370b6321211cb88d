import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { reduceRange } from './hash.ts';
import {
  BLOCK_PEERS,
  CELLS,
  createCellTable,
  createNarrowScratch,
  createWideScratch,
  firstX,
  NARROW_MAX_RANGE,
  NARROW_SHIFT,
  replacePeer,
  tableEntries,
  tableHas,
  WIDE_SHIFT,
} from './cell-table.ts';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0);
}

test("firstX is the exact start of a value's x-interval, for small and huge ranges", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 2 ** 32 }), fc.nat(), (range, seed) => {
      const v = seed % (range + 1);
      const x = firstX(v, range);
      if (v === range) assert.equal(x, 2 ** 32);
      else assert.ok(reduceRange(x, range) >= v && reduceRange(x, range) <= v, `${v} of ${range}`);
      if (x > 0) assert.ok(reduceRange(x - 1, range) < v);
    }),
    { seed: 31, numRuns: 3000 },
  );
});

const peerArb = fc.record({
  local: fc.nat(BLOCK_PEERS - 1),
  keys: fc.nat(300),
  rangeKind: fc.constantFrom('tiny', 'normal', 'normal', 'large', 'wide'),
  clustered: fc.boolean(),
  seed: fc.nat(),
});

test('a table answers exactly "reduceRange(x) is one of the peer\'s values" through replacements and removals', () => {
  fc.assert(
    fc.property(fc.array(peerArb, { minLength: 1, maxLength: 30 }), fc.boolean(), (ops, wide) => {
      const scratch = wide ? createWideScratch() : createNarrowScratch();
      const shift = wide ? WIDE_SHIFT : NARROW_SHIFT;
      const table = createCellTable<Int32Array | Uint16Array>(scratch);
      const peers = new Map<number, { range: number; values: Set<number>; list: Uint32Array }>();
      for (const op of ops) {
        const next = lcg(op.seed);
        const m = op.rangeKind === 'tiny' ? 2 : 104;
        let range = op.keys * m;
        if (op.rangeKind === 'large') range = Math.min(NARROW_MAX_RANGE, op.keys * 15000);
        if (op.rangeKind === 'wide') range = wide ? Math.max(op.keys, 1) * 14_000_000 : Math.min(NARROW_MAX_RANGE, op.keys * 14_000);
        range = Math.min(range, 2 ** 32);
        // Clustered values (duplicates, neighbours) stress the cell boundaries.
        const values = Uint32Array.from({ length: op.keys }, () => (op.clustered ? next() % Math.min(range, 50) : next() % range)).sort();
        replacePeer(table, op.local, { values: range === 0 ? new Uint32Array(0) : values, range }, scratch);
        if (op.keys === 0) peers.delete(op.local);
        else peers.set(op.local, { range, values: new Set(values), list: values });
      }
      let expectedEntries = 0;
      for (const [local, peer] of peers) {
        const probes: number[] = [];
        for (const v of peer.list) probes.push(firstX(v, peer.range), firstX(v + 1, peer.range) - 1, Math.max(0, firstX(v, peer.range) - 1));
        const next = lcg(local + 7);
        for (let i = 0; i < 100; i++) probes.push(next());
        for (const x of probes) {
          if (x >= 2 ** 32) continue;
          assert.equal(tableHas(table, shift, { local, range: peer.range }, x), peer.values.has(reduceRange(x, peer.range)), `local ${local} x ${x}`);
        }
        expectedEntries += peer.values.size;
      }
      // Every distinct value once, plus at most one per cell boundary.
      assert.ok(tableEntries(table) >= expectedEntries && tableEntries(table) <= expectedEntries + peers.size * CELLS);
      for (const local of [...Array(BLOCK_PEERS).keys()].filter((l) => !peers.has(l))) {
        for (let c = 0; c < CELLS; c += 97) for (let k = table.starts[c]!; k < table.starts[c + 1]!; k++) assert.notEqual(table.entries[k]! >>> shift, local);
      }
    }),
    { seed: 32, numRuns: 120 },
  );
});

test('narrow tables refuse ranges whose values a 10-bit low part cannot tell apart', () => {
  const scratch = createNarrowScratch();
  const table = createCellTable(scratch);
  assert.throws(() => replacePeer(table, 0, { values: Uint32Array.of(1), range: NARROW_MAX_RANGE + 1 }, scratch), RangeError);
  assert.throws(() => replacePeer(table, BLOCK_PEERS, { values: Uint32Array.of(1), range: 100 }, scratch), RangeError);
  replacePeer(table, 3, { values: Uint32Array.of(5, 5, 9), range: 104 }, scratch);
  assert.equal(tableEntries(table) >= 2, true);
  replacePeer(table, 3, { values: new Uint32Array(0), range: 0 }, scratch);
  assert.equal(tableEntries(table), 0);
});

test('intervals that end or start exactly on a cell boundary are listed in the right cells', () => {
  const width = 2 ** 32 / CELLS;
  // range 2^32: value v is the single x = v, so cell starts and ends are hit exactly.
  const scratch = createWideScratch();
  const table = createCellTable(scratch);
  const values = Uint32Array.of(0, width - 1, width, 5 * width, 5 * width + 1, 2 ** 32 - 1);
  replacePeer(table, 1, { values, range: 2 ** 32 }, scratch);
  for (const v of values) {
    assert.ok(tableHas(table, WIDE_SHIFT, { local: 1, range: 2 ** 32 }, v), `value ${v}`);
    if (!values.includes(v + 1) && v + 1 < 2 ** 32) assert.ok(!tableHas(table, WIDE_SHIFT, { local: 1, range: 2 ** 32 }, v + 1));
  }
  assert.equal(tableEntries(table), values.length);
  // A narrow range whose intervals straddle most cell boundaries: every x must hit.
  const narrow = createNarrowScratch();
  const straddle = createCellTable(narrow);
  const range = 3 * CELLS - 1;
  const all = Uint32Array.from({ length: range }, (_, i) => i);
  replacePeer(straddle, 2, { values: all, range }, narrow);
  assert.ok(tableEntries(straddle) > range + CELLS / 2 && tableEntries(straddle) <= range + CELLS - 1);
  for (let c = 1; c < CELLS; c++) {
    assert.ok(tableHas(straddle, NARROW_SHIFT, { local: 2, range }, c * width - 1));
    assert.ok(tableHas(straddle, NARROW_SHIFT, { local: 2, range }, c * width));
  }
});
