// The peer index across several blocks of BLOCK_PEERS slots (slot reuse,
// narrow and wide tables, mixed shard counts) against each peer's decoded
// summary. peer-index.test.ts has the model test of the ordering rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BLOCK_PEERS, NARROW_MAX_RANGE } from './cell-table.ts';
import { createHasher, rendezvousWeight } from './hash.ts';
import { encodeSummary } from './encode.ts';
import { decodeSummary, type PeerSummary } from './decode.ts';
import { createPeerIndex } from './peer-index.ts';

const hasher = await createHasher();
const pool = Array.from({ length: 400 }, (_, i) => `sha256:${hasher.digest(`pool${i}`).repeat(4)}`);

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296;
}

function expected(peers: Map<string, { zone: string; summary: PeerSummary }>, key: string, zone: string): string[] {
  const hash = hasher.hash(key);
  return [...peers]
    .filter(([, p]) => p.summary.has(hash))
    .map(([name, p]) => {
      const seed = hasher.hash(name);
      const tier = (p.zone === zone ? 0 : 2) + (p.summary.header.mode === 'all' ? 1 : 0);
      return { name, tier, weight: rendezvousWeight(hash, seed.hi, seed.lo) };
    })
    .sort((a, b) => a.tier - b.tier || b.weight - a.weight)
    .map((r) => r.name);
}

test('lookups over several blocks stay exact through removals, slot reuse and shard-count changes', () => {
  const random = lcg(41);
  const index = createPeerIndex({ self: 'self', hasher });
  const model = new Map<string, { zone: string; summary: PeerSummary }>();
  const peersTotal = BLOCK_PEERS * 2 + 40;
  const check = (): void => {
    for (const key of [...pool.slice(0, 60), 'docker.io/library/absent:1', 'docker.io/library/absent:2']) {
      assert.deepEqual(index.lookup(key, { zone: 'a' }), expected(model, key, 'a'), key);
      assert.deepEqual(index.lookup(key, { zone: 'b', limit: 5 }), expected(model, key, 'b').slice(0, 5), key);
    }
  };
  for (let op = 0; op < 600; op++) {
    const name = `peer-${Math.floor(random() * peersTotal)}`;
    if (random() < 0.1) {
      index.removePeer(name);
      model.delete(name);
    } else {
      const keys = pool.filter(() => random() < 0.1);
      const shards = random() < 0.8 ? 8 : 3;
      const annotations = encodeSummary(keys, { hasher, shards, generation: op, budgetBytes: random() < 0.03 ? 100 : undefined }).annotations;
      const zone = random() < 0.5 ? 'a' : 'b';
      assert.equal(index.upsertPeer(name, { zone, ready: true, annotations }).status, 'ok');
      model.set(name, { zone, summary: decodeSummary(annotations)! });
    }
    if (op % 50 === 49) check();
  }
  check();
  assert.equal(index.stats().peers, model.size);
  assert.ok(model.size > BLOCK_PEERS * 2, 'three blocks in use');
});

test('a peer whose shard range is over the narrow limit is found through the wide tables, and back', () => {
  const keys = Array.from({ length: Math.ceil(NARROW_MAX_RANGE / 104) + 500 }, (_, i) => `sha256:${hasher.digest(`wide${i}`).repeat(4)}`);
  const big = encodeSummary(keys, { hasher, shards: 1, generation: 1 }).annotations;
  const summary = decodeSummary(big)!;
  assert.ok(summary.filters[0]!.range > NARROW_MAX_RANGE);
  const index = createPeerIndex({ self: 'me', hasher });
  index.upsertPeer('small', { ready: true, annotations: encodeSummary(keys.slice(0, 50), { hasher, shards: 1, generation: 1 }).annotations });
  index.upsertPeer('big', { ready: true, annotations: big });
  for (let i = 0; i < keys.length; i += 7) assert.ok(index.lookup(keys[i]!).includes('big'), keys[i]);
  let claims = 0;
  for (let i = 0; i < 4000; i++) {
    const key = `docker.io/probe/${i}:x`;
    const claimed = index.lookup(key).includes('big');
    assert.equal(claimed, summary.has(hasher.hash(key)), key);
    if (claimed) claims++;
  }
  assert.ok(claims > 0 && claims < 120, `${claims} false positives of 4000`);
  // Shrinks back into a narrow table: the wide entries must be gone.
  const shrunk = encodeSummary(keys.slice(0, 10), { hasher, shards: 1, generation: 2 }).annotations;
  index.upsertPeer('big', { ready: true, annotations: shrunk });
  const shrunkSummary = decodeSummary(shrunk)!;
  for (let i = 0; i < 400; i++) assert.equal(index.lookup(keys[i]!).includes('big'), shrunkSummary.has(hasher.hash(keys[i]!)), keys[i]);
  assert.deepEqual([...index.lookup(keys[3]!)].sort(), ['big', 'small']);
});
