// The owner store against an independent oracle (holder -> shard -> key
// indices, plain Maps and Sets) over random sequences of replaces, deltas,
// holder removals and shard drops; and the digest: equal for equal contents
// however they were reached, different when one key differs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { keyHashOf, type KeyHash } from './hash.ts';
import { createOwnerStore, keyNumber, type OwnerStore } from './owner-store.ts';

const SHARDS = 4;
const HOLDERS = ['agent-a', 'agent-b', 'agent-c', 'agent-d'];
/** 24 keys; key i lives in shard i % SHARDS (as jump hash puts each key in one shard). */
const HASHES: KeyHash[] = Array.from({ length: 24 }, (_, i) => keyHashOf(Math.imul(i + 1, 0x9e3779b1) >>> 0, Math.imul(i + 7, 0x85ebca6b) >>> 0));
const KEYS: number[] = HASHES.map(keyNumber);
const shardOf = (i: number): number => i % SHARDS;

type Op =
  | { kind: 'replace'; holder: number; shard: number; keys: number[] }
  | { kind: 'apply'; holder: number; shard: number; added: number[]; removed: number[] }
  | { kind: 'removeHolder'; holder: number }
  | { kind: 'dropShard'; shard: number };

const inShard = (shard: number): fc.Arbitrary<number[]> =>
  fc.uniqueArray(
    fc.integer({ min: 0, max: KEYS.length / SHARDS - 1 }).map((j) => j * SHARDS + shard),
    { maxLength: 6 },
  );

const op: fc.Arbitrary<Op> = fc.oneof(
  fc
    .record({ holder: fc.nat(HOLDERS.length - 1), shard: fc.nat(SHARDS - 1) })
    .chain(({ holder, shard }) => inShard(shard).map((keys): Op => ({ kind: 'replace', holder, shard, keys }))),
  fc
    .record({ holder: fc.nat(HOLDERS.length - 1), shard: fc.nat(SHARDS - 1) })
    .chain(({ holder, shard }) => fc.tuple(inShard(shard), inShard(shard)).map(([added, removed]): Op => ({ kind: 'apply', holder, shard, added, removed }))),
  fc.nat(HOLDERS.length - 1).map((holder): Op => ({ kind: 'removeHolder', holder })),
  fc.nat(SHARDS - 1).map((shard): Op => ({ kind: 'dropShard', shard })),
);

/** holder -> shard -> key indices. */
type Oracle = Map<string, Map<number, Set<number>>>;

function shardSet(oracle: Oracle, holder: string, shard: number): Set<number> {
  let shards = oracle.get(holder);
  if (shards === undefined) {
    shards = new Map<number, Set<number>>();
    oracle.set(holder, shards);
  }
  let keys = shards.get(shard);
  if (keys === undefined) {
    keys = new Set<number>();
    shards.set(shard, keys);
  }
  return keys;
}

function run(store: OwnerStore, oracle: Oracle, o: Op): void {
  switch (o.kind) {
    case 'replace': {
      const holder = HOLDERS[o.holder]!;
      store.replace(
        holder,
        o.shard,
        o.keys.map((i) => KEYS[i]!),
      );
      const keys = shardSet(oracle, holder, o.shard);
      keys.clear();
      for (const i of o.keys) keys.add(i);
      return;
    }
    case 'apply': {
      const holder = HOLDERS[o.holder]!;
      store.apply(
        holder,
        o.shard,
        o.added.map((i) => KEYS[i]!),
        o.removed.map((i) => KEYS[i]!),
      );
      const keys = shardSet(oracle, holder, o.shard);
      for (const i of o.removed) keys.delete(i);
      for (const i of o.added) keys.add(i);
      return;
    }
    case 'removeHolder':
      store.removeHolder(HOLDERS[o.holder]!);
      oracle.delete(HOLDERS[o.holder]!);
      return;
    case 'dropShard':
      store.dropShard(o.shard);
      for (const shards of oracle.values()) shards.delete(o.shard);
  }
}

function check(store: OwnerStore, oracle: Oracle): void {
  let postings = 0;
  for (const shards of oracle.values()) for (const keys of shards.values()) postings += keys.size;
  assert.equal(store.stats().postings, postings);
  KEYS.forEach((key, i) => {
    const expected = HOLDERS.filter((holder) => oracle.get(holder)?.get(shardOf(i))?.has(i) === true);
    assert.deepEqual([...store.holders(key)].sort(), expected, `holders of key ${i}`);
  });
  for (const holder of HOLDERS) {
    for (let shard = 0; shard < SHARDS; shard++) {
      const keys = oracle.get(holder)?.get(shard);
      if (keys === undefined || keys.size === 0) assert.equal(store.digest(holder, shard), '0-0');
      else assert.match(store.digest(holder, shard), new RegExp(`^${keys.size}-[0-9a-f]{16}$`));
    }
  }
}

describe('owner store', () => {
  it('answers as the oracle after any sequence of replaces, deltas, removals and drops', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const store = createOwnerStore();
        const oracle: Oracle = new Map();
        for (const o of ops) {
          run(store, oracle, o);
          check(store, oracle);
        }
      }),
      { numRuns: 300, seed: 1407 },
    );
  });

  it('digests are equal for equal contents however reached, and differ when one key differs', () => {
    const one = createOwnerStore();
    one.replace('a', 1, [KEYS[1]!, KEYS[5]!, KEYS[9]!]);
    const two = createOwnerStore();
    two.apply('a', 1, [KEYS[9]!], []);
    two.apply('a', 1, [KEYS[13]!, KEYS[5]!], []);
    two.apply('a', 1, [KEYS[1]!], [KEYS[13]!]);
    assert.equal(one.digest('a', 1), two.digest('a', 1));
    two.apply('a', 1, [KEYS[13]!], [KEYS[9]!]);
    assert.notEqual(one.digest('a', 1), two.digest('a', 1), 'same count, one key swapped');
  });

  it('keys are 53 bits of the hash, exact in a double', () => {
    const top = keyHashOf(0xffffffff, 0xffffffff);
    assert.equal(keyNumber(top), Number.MAX_SAFE_INTEGER);
    assert.ok(Number.isSafeInteger(keyNumber(top)));
    assert.equal(keyNumber(keyHashOf(0, 5)), 5);
  });
});
