// The cap on concurrent blob streams from peers: unit, then through the peer
// source against a real peer registry.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { createLogger } from '../log/logger.ts';
import { createPeerSource } from './source.ts';
import { createStreamLimit } from './stream-limit.ts';
import { startPeer, until } from '../../tests/support/peer/testkit.ts';

test('slots up to the limit; release is idempotent; 0 means no limit', () => {
  const limit = createStreamLimit(2);
  const a = limit.tryAcquire();
  const b = limit.tryAcquire();
  assert.ok(a !== undefined && b !== undefined);
  assert.equal(limit.tryAcquire(), undefined);
  a();
  a();
  assert.equal(limit.active(), 1);
  assert.ok(limit.tryAcquire() !== undefined);
  const unlimited = createStreamLimit(0);
  for (let i = 0; i < 1000; i++) assert.ok(unlimited.tryAcquire() !== undefined);
});

test('past the limit a blob GET is "not here" at once, without asking the peer; slots come back', async (t) => {
  const peer = await startPeer(2);
  t.after(() => peer.app.close());
  const bytes = randomBytes(256 * 1024);
  const digest = peer.store.put(bytes);
  const source = createPeerSource({
    logger: createLogger('silent'),
    resolveTags: true,
    candidates: () => [peer.candidate],
    maxStreams: 2,
  });
  t.after(() => source.close());
  const request = { registry: 'docker.io', name: 'library/x', kind: 'blob' as const, method: 'GET' as const };
  const first = await source.locate(request, digest);
  const second = await source.locate(request, digest);
  assert.ok(first !== undefined && second !== undefined);
  const asked = peer.requests().length;
  const start = performance.now();
  assert.equal(await source.locate(request, digest), undefined);
  assert.ok(performance.now() - start < 50);
  assert.equal(source.stats().streamsLimited, 1);
  // HEAD and manifests are not streams: not limited.
  assert.ok((await source.locate({ ...request, method: 'HEAD' }, digest)) !== undefined);
  await until(() => peer.requests().length === asked + 1);

  // Never read: release() frees the slot.
  first.release?.();
  const third = await source.locate(request, digest);
  assert.ok(third !== undefined);
  // Read: the slot is held while the stream is open, and freed when it closes.
  const stream = await second.read();
  second.release?.();
  assert.equal(await source.locate(request, digest), undefined);
  assert.deepEqual(Buffer.concat(await stream.toArray()), bytes);
  await until(() => stream.destroyed);
  const fourth = await source.locate(request, digest);
  assert.ok(fourth !== undefined);
  third.release?.();
  fourth.release?.();
  assert.equal(source.stats().streamsLimited, 2);
});
