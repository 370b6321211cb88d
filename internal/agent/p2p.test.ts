// The pure parts of the agent's peer-to-peer wiring: the summary generation,
// peer URLs and the candidates asked for a key (the rest is covered end to end
// by tests/e2e/p2p.test.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PeerInfo } from '../kube/peers.ts';
import { nextGeneration, peerCandidates, peerUrl } from './p2p.ts';

test('the summary generation only grows, even when the clock does not', () => {
  let generation = 0;
  const seen: number[] = [];
  for (const now of [1000, 1000, 1000, 999, 500, 2000, 2000]) {
    generation = nextGeneration(generation, now);
    seen.push(generation);
  }
  assert.deepEqual(seen, [1000, 1001, 1002, 1003, 1004, 2000, 2001]);
});

test('peer URLs: IPv6 addresses in brackets', () => {
  assert.equal(peerUrl('10.0.0.7', 5000), 'http://10.0.0.7:5000');
  assert.equal(peerUrl('fd00::7', 5000), 'http://[fd00::7]:5000');
});

test('candidates: in the index order, skipping unready peers and peers the directory does not know', () => {
  const peer = (name: string, ip: string, ready: boolean): [string, PeerInfo] => [name, { name, ip, port: 5000, zone: undefined, nodeName: undefined, ready }];
  const directory = new Map([peer('a', '10.0.0.1', true), peer('b', '10.0.0.2', false), peer('c', 'fd00::3', true)]);
  assert.deepEqual(peerCandidates(['c', 'b', 'gone', 'a'], directory), [
    { name: 'c', url: 'http://[fd00::3]:5000' },
    { name: 'a', url: 'http://10.0.0.1:5000' },
  ]);
  assert.deepEqual(peerCandidates([], directory), []);
});
