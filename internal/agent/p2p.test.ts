// The pure parts of the agent's peer-to-peer wiring: peer URLs and the
// candidates asked for a key (the rest is covered end to end by
// tests/e2e/p2p.test.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PeerInfo } from '../kube/peers.ts';
import { peerCandidates, peerUrl } from './p2p.ts';

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
