import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createHasher, rendezvousWeight } from './hash.ts';
import { encodeSummary } from './encode.ts';
import { decodeSummary, type PeerSummary } from './decode.ts';
import { createPeerIndex } from './peer-index.ts';
import { HEADER_ANNOTATION, shardAnnotation } from './annotations.ts';

const hasher = await createHasher();
const universe = Array.from({ length: 60 }, (_, i) => (i % 5 === 0 ? `docker.io/library/app${i}:1.${i}` : `sha256:${hasher.digest(`u${i}`).repeat(4)}`));
const annotationsFor = (keys: string[], shards = 8, budgetBytes?: number): Record<string, string> =>
  encodeSummary(keys, { hasher, shards, generation: 1, ...(budgetBytes === undefined ? {} : { budgetBytes }) }).annotations;

interface ModelPeer {
  zone: string | undefined;
  ready: boolean;
  summary: PeerSummary | undefined;
}

/** The lookup rules, written plainly: claimed, ready, not self; same zone, then exact before saturated, then weight. */
function expectedLookup(peers: Map<string, ModelPeer>, key: string, zone: string | undefined): string[] {
  const hash = hasher.hash(key);
  const rows = [...peers]
    .filter(([, p]) => p.ready && p.summary !== undefined && p.summary.has(hash))
    .map(([name, p]) => {
      const seed = hasher.hash(name);
      const tier = (zone === undefined || p.zone === zone ? 0 : 2) + (p.summary!.header.mode === 'all' ? 1 : 0);
      return { name, tier, weight: rendezvousWeight(hash, seed.hi, seed.lo) };
    });
  return rows.sort((a, b) => a.tier - b.tier || b.weight - a.weight).map((r) => r.name);
}

test('lookup equals the plain rules over any sequence of upserts, readiness changes and removals', () => {
  const op = fc.oneof(
    fc.record({
      kind: fc.constant('upsert' as const),
      peer: fc.nat(11),
      keys: fc.subarray(universe),
      zone: fc.constantFrom('a', 'b', undefined),
      ready: fc.boolean(),
      shards: fc.constantFrom(8, 8, 3),
      variant: fc.constantFrom('ok', 'ok', 'ok', 'saturated', 'invalid', 'none'),
    }),
    fc.record({ kind: fc.constant('ready' as const), peer: fc.nat(11), ready: fc.boolean() }),
    fc.record({ kind: fc.constant('remove' as const), peer: fc.nat(11) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 40 }), fc.constantFrom('a', 'b', 'c', undefined), (ops, zone) => {
      const index = createPeerIndex({ self: 'peer-0', hasher });
      const model = new Map<string, ModelPeer>();
      for (const o of ops) {
        const name = `peer-${o.peer}`;
        if (o.kind === 'upsert') {
          const annotations =
            o.variant === 'none'
              ? { 'other/x': 'y' }
              : o.variant === 'invalid'
                ? { ...annotationsFor(o.keys, o.shards), [shardAnnotation(0)]: '!!!!' }
                : annotationsFor(o.keys, o.shards, o.variant === 'saturated' ? 100 : undefined);
          const result = index.upsertPeer(name, { zone: o.zone, ready: o.ready, annotations });
          if (name === 'peer-0') {
            assert.equal(result.status, 'self');
            continue;
          }
          assert.equal(result.status, o.variant === 'saturated' ? 'ok' : o.variant);
          if (o.variant === 'invalid') assert.ok(result.error !== undefined);
          model.set(name, { zone: o.zone, ready: o.ready, summary: o.variant === 'invalid' || o.variant === 'none' ? undefined : decodeSummary(annotations) });
        } else if (o.kind === 'ready') {
          index.setReady(name, o.ready);
          if (name !== 'peer-0') model.set(name, { zone: undefined, summary: undefined, ...model.get(name), ready: o.ready });
        } else {
          assert.equal(index.removePeer(name), model.delete(name));
        }
      }
      for (const key of [...universe.slice(0, 25), 'docker.io/library/absent:1']) {
        assert.deepEqual(index.lookup(key, { zone }), expectedLookup(model, key, zone), key);
        assert.deepEqual(index.lookup(key, { zone, limit: 2 }), expectedLookup(model, key, zone).slice(0, 2));
      }
    }),
    { seed: 51, numRuns: 150 },
  );
});

test('self, not-ready peers and peers without the key are never candidates; the same zone comes first', () => {
  const index = createPeerIndex({ self: 'node-a', hasher });
  const key = 'docker.io/library/nginx:1.27';
  const withKey = annotationsFor([key]);
  index.upsertPeer('node-a', { zone: 'z1', ready: true, annotations: withKey });
  index.upsertPeer('node-b', { zone: 'z2', ready: true, annotations: withKey });
  index.upsertPeer('node-c', { zone: 'z1', ready: true, annotations: withKey });
  index.upsertPeer('node-d', { zone: 'z1', ready: false, annotations: withKey });
  index.upsertPeer('node-e', { zone: 'z1', ready: true, annotations: annotationsFor(['docker.io/library/redis:8']) });
  assert.deepEqual(index.lookup(key, { zone: 'z1' }), ['node-c', 'node-b']);
  assert.deepEqual(index.lookup(key, { zone: 'z2' }), ['node-b', 'node-c']);
  index.setReady('node-d', true);
  assert.deepEqual(index.lookup(key, { zone: 'z1' }).slice(2), ['node-b']);
  index.setReady('node-b', false);
  assert.ok(!index.lookup(key).includes('node-b'));
  assert.equal(index.stats().peers, 4);
});

test('an upsert decodes only the shards whose annotation changed', () => {
  const index = createPeerIndex({ self: 'me', hasher });
  const keys = universe.slice(0, 40);
  const first = annotationsFor(keys);
  assert.equal(index.upsertPeer('p', { ready: true, annotations: first }).decodedShards, 8);
  assert.equal(
    index.upsertPeer('p', { ready: true, annotations: { ...first, [HEADER_ANNOTATION]: first[HEADER_ANNOTATION]!.replace('g=1', 'g=2') } }).decodedShards,
    0,
  );
  assert.equal(index.upsertPeer('p', { ready: true, annotations: annotationsFor([...keys, 'docker.io/library/new:1']) }).decodedShards, 1);
  assert.deepEqual(index.lookup('docker.io/library/new:1'), ['p']);
  assert.equal(index.stats().shardDecodes, 9);
});

test('rendezvous ordering spreads first choices evenly over the peers', () => {
  const index = createPeerIndex({ self: 'me', hasher });
  const keys = Array.from({ length: 4000 }, (_, i) => `sha256:${hasher.digest(`spread${i}`).repeat(4)}`);
  const annotations = annotationsFor(keys);
  const peers = 10;
  for (let p = 0; p < peers; p++) index.upsertPeer(`node-${p}`, { ready: true, annotations });
  const firsts = new Map<string, number>();
  for (const key of keys) {
    const order = index.lookup(key);
    assert.equal(order.length, peers);
    firsts.set(order[0]!, (firsts.get(order[0]!) ?? 0) + 1);
  }
  for (const [peer, count] of firsts) assert.ok(Math.abs(count - keys.length / peers) < 0.2 * (keys.length / peers), `${peer}: ${count}`);
  // Removing a peer only moves the keys it was first for.
  const before = new Map(keys.map((k) => [k, index.lookup(k)[0]]));
  index.removePeer('node-3');
  for (const key of keys) if (before.get(key) !== 'node-3') assert.equal(index.lookup(key)[0], before.get(key));
});

test('a shard over 2^21 values takes the exact (two-step) reduction path', () => {
  const keys = Array.from({ length: 21000 }, (_, i) => `sha256:${hasher.digest(`big${i}`).repeat(4)}`);
  const index = createPeerIndex({ self: 'me', hasher });
  index.upsertPeer('big', { ready: true, annotations: annotationsFor(keys, 1) });
  index.upsertPeer('small', { ready: true, annotations: annotationsFor(keys.slice(0, 10), 1) });
  const summary = decodeSummary(annotationsFor(keys, 1))!;
  assert.ok(summary.filters[0]!.range > 2 ** 21);
  for (const key of keys) assert.ok(index.lookup(key).includes('big'), key);
  for (let i = 0; i < 3000; i++) {
    const key = `docker.io/probe/${i}:x`;
    assert.equal(index.lookup(key).includes('big'), summary.has(hasher.hash(key)));
  }
});

test('a peer whose shard grows past 2^21 values (narrow to wide table) and shrinks back keeps answering', () => {
  const keys = Array.from({ length: 21000 }, (_, i) => `sha256:${hasher.digest(`grow${i}`).repeat(4)}`);
  const few = keys.slice(0, 10);
  const index = createPeerIndex({ self: 'me', hasher });
  index.upsertPeer('other', { ready: true, annotations: annotationsFor(few, 1) });
  index.upsertPeer('grows', { ready: true, annotations: annotationsFor(few, 1) });
  // Same peer, same slot: its one shard moves from the narrow table (range <= 2^21) to the wide one, then back.
  index.upsertPeer('grows', { ready: true, annotations: annotationsFor(keys, 1) });
  for (const key of keys.slice(0, 2000)) assert.ok(index.lookup(key).includes('grows'), key);
  index.upsertPeer('grows', { ready: true, annotations: annotationsFor(few, 1) });
  for (const key of few) assert.deepEqual([...index.lookup(key)].sort(), ['grows', 'other'], key);
  const gone = keys.slice(5000, 7000).filter((key) => index.lookup(key).includes('grows'));
  assert.ok(gone.length < 100, `${gone.length} of 2000 keys it no longer has still point to it (false positives only)`);
});
