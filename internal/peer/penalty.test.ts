import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Candidate } from './client.ts';
import { createPeerPenalties } from './penalty.ts';

const peer = (name: string): Candidate => ({ name, url: `http://${name}:5000` });
const names = (candidates: readonly Candidate[]): string[] => candidates.map((c) => c.name);

describe('peer penalties', () => {
  it('a penalised peer goes last until its penalty ends, and is never dropped', () => {
    let nowMs = 1000;
    const penalties = createPeerPenalties({ baseMs: 100, maxMs: 1000, nowMs: () => nowMs });
    const all = [peer('a'), peer('b'), peer('c')];
    assert.equal(penalties.order(all), all, 'nothing penalised: the same array');
    assert.equal(penalties.penalise('a'), 100);
    assert.deepEqual(names(penalties.order(all)), ['b', 'c', 'a']);
    assert.deepEqual(names(penalties.order([peer('a')])), ['a'], 'the only source stays a candidate');
    assert.equal(penalties.isPenalised('a'), true);
    assert.equal(penalties.active(), 1);
    nowMs += 100;
    assert.equal(penalties.isPenalised('a'), false);
    assert.deepEqual(names(penalties.order(all)), ['a', 'b', 'c']);
  });

  it('repeated faults double the penalty up to the maximum', () => {
    let nowMs = 0;
    const penalties = createPeerPenalties({ baseMs: 100, maxMs: 500, nowMs: () => nowMs });
    assert.deepEqual(
      [1, 2, 3, 4, 5].map(() => penalties.penalise('a')),
      [100, 200, 400, 500, 500],
    );
    nowMs += 499;
    assert.equal(penalties.isPenalised('a'), true);
  });

  it('among penalised peers, the one whose penalty ends first goes first', () => {
    let nowMs = 0;
    const penalties = createPeerPenalties({ baseMs: 100, maxMs: 10_000, nowMs: () => nowMs });
    penalties.penalise('a');
    penalties.penalise('a'); // 200 ms
    nowMs += 10;
    penalties.penalise('b'); // until 110
    assert.deepEqual(names(penalties.order([peer('a'), peer('b'), peer('c')])), ['c', 'b', 'a']);
  });

  it('successes take strikes off; a long quiet time forgets the peer', () => {
    let nowMs = 0;
    const penalties = createPeerPenalties({ baseMs: 100, maxMs: 1000, nowMs: () => nowMs });
    penalties.penalise('a');
    penalties.penalise('a');
    penalties.penalise('a'); // 3 strikes, 400 ms
    penalties.succeeded('a'); // 2 strikes
    nowMs += 400;
    assert.equal(penalties.penalise('a'), 400, 'third strike again');
    penalties.succeeded('a');
    penalties.succeeded('a');
    penalties.succeeded('a');
    assert.equal(penalties.isPenalised('a'), false, 'no strike left: not penalised');
    assert.equal(penalties.penalise('a'), 100);
    nowMs += 100 + 1001;
    assert.equal(penalties.penalise('a'), 100, 'forgotten after a quiet maxMs');
  });

  it('remembers a bounded number of peers, dropping the oldest', () => {
    const penalties = createPeerPenalties({ maxPeers: 2 });
    penalties.penalise('a');
    penalties.penalise('b');
    penalties.penalise('c');
    assert.equal(penalties.isPenalised('a'), false);
    assert.equal(penalties.isPenalised('b'), true);
    assert.equal(penalties.isPenalised('c'), true);
    assert.equal(penalties.active(), 2);
  });

  it('a peer distrusted for a key is left out of that key only, for maxMs, bounded', () => {
    let nowMs = 0;
    const penalties = createPeerPenalties({ baseMs: 100, maxMs: 1000, maxPeers: 2, nowMs: () => nowMs });
    const all = [peer('a'), peer('b')];
    penalties.distrust('a', 'sha256:1');
    assert.deepEqual(names(penalties.order(all, 'sha256:1')), ['b']);
    assert.deepEqual(names(penalties.order([peer('a')], 'sha256:1')), [], 'even when it is the only holder');
    assert.deepEqual(names(penalties.order(all, 'sha256:2')), ['a', 'b'], 'other keys: still a candidate');
    assert.deepEqual(names(penalties.order(all)), ['a', 'b'], 'no key: no filter');
    nowMs += 1001;
    assert.deepEqual(names(penalties.order(all, 'sha256:1')), ['a', 'b'], 'trusted again after maxMs');
    penalties.distrust('a', 'k1');
    penalties.distrust('a', 'k2');
    penalties.distrust('a', 'k3');
    assert.deepEqual(names(penalties.order(all, 'k1')), ['a', 'b'], 'the oldest pair was dropped');
    assert.deepEqual(names(penalties.order(all, 'k3')), ['b']);
  });
});
