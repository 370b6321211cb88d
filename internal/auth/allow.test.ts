import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createAddressAllowList, localClientAllowList, normalizeAddress, parseAddressEntry } from './allow.ts';

test('the local list: loopback, the node IP and extra CIDRs; nothing else', () => {
  const list = localClientAllowList('10.0.0.5', ['10.244.3.1', 'fd00:1::/64']);
  for (const allowed of ['127.0.0.1', '127.5.6.7', '::1', '::ffff:127.0.0.1', '10.0.0.5', '::ffff:10.0.0.5', '10.244.3.1', 'fd00:1::9']) {
    assert.equal(list.allows(allowed), true, allowed);
  }
  for (const refused of ['10.0.0.6', '10.244.3.2', '192.168.1.1', 'fd00:2::1', '::2', '', 'nonsense', undefined]) {
    assert.equal(list.allows(refused), false, String(refused));
  }
  assert.deepEqual(list.entries, ['127.0.0.0/8', '::1/128', '10.0.0.5/32', '10.244.3.1/32', 'fd00:1::/64']);
});

test('without a node IP: loopback only', () => {
  const list = localClientAllowList('', []);
  assert.equal(list.allows('127.0.0.1'), true);
  assert.equal(list.allows('10.0.0.5'), false);
});

test('a narrow list (as the tests use): 127.0.0.3 is not 127.0.0.2', () => {
  const list = createAddressAllowList(['127.0.0.2']);
  assert.equal(list.allows('127.0.0.2'), true);
  assert.equal(list.allows('127.0.0.3'), false);
});

test('entries: addresses and CIDRs; anything else is a one-line error', () => {
  assert.deepEqual(parseAddressEntry(' 10.0.0.0/8 '), { network: '10.0.0.0', prefix: 8, family: 'ipv4' });
  assert.deepEqual(parseAddressEntry('::ffff:10.1.2.3'), { network: '10.1.2.3', prefix: 32, family: 'ipv4' });
  assert.deepEqual(parseAddressEntry('fd00::/0'), { network: 'fd00::', prefix: 0, family: 'ipv6' });
  for (const bad of ['', 'node-1', '10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/8/8', '10.0.0.256', 'fd00::/129', '10.0.0.0/']) {
    assert.throws(() => parseAddressEntry(bad), /not an IP address or CIDR|prefix length/, bad);
  }
  assert.equal(normalizeAddress('fe80::1%eth0'), 'fe80::1');
});
