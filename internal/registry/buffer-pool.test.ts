import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createBufferPool } from './buffer-pool.ts';

test('buffers are allocated up to the bound, then reused while a stream is open', () => {
  const pool = createBufferPool({ bufferBytes: 1024, maxBuffers: 2 });
  const over = pool.open();
  const a = pool.tryAcquire();
  const b = pool.tryAcquire();
  assert.ok(a !== undefined && b !== undefined && a !== b);
  assert.equal(a.length, 1024);
  assert.equal(pool.tryAcquire(), undefined);
  pool.release(a);
  assert.equal(pool.tryAcquire(), a);
  assert.deepEqual(pool.stats(), { bufferBytes: 1024, maxBuffers: 2, allocated: 2, lent: 2, waiting: 0, streams: 1 });
  pool.release(a);
  pool.release(b);
  assert.equal(pool.stats().lent, 0);
  assert.equal(pool.stats().allocated, 2, 'kept while a stream is open');
  assert.throws(() => pool.release(Buffer.alloc(1024)), /does not belong/);
  over();
  over();
  assert.deepEqual(pool.stats(), { bufferBytes: 1024, maxBuffers: 2, allocated: 0, lent: 0, waiting: 0, streams: 0 });
});

test('once the last stream is over, buffers still lent are let go when they come back', () => {
  const pool = createBufferPool({ bufferBytes: 16, maxBuffers: 4 });
  const first = pool.open();
  const second = pool.open();
  const a = pool.tryAcquire();
  assert.ok(a !== undefined);
  first();
  assert.equal(pool.stats().allocated, 1);
  second();
  pool.release(a);
  assert.deepEqual(pool.stats(), { bufferBytes: 16, maxBuffers: 4, allocated: 0, lent: 0, waiting: 0, streams: 0 });
});

test('waiters are served in order; tryAcquire does not jump the queue', async () => {
  const pool = createBufferPool({ bufferBytes: 16, maxBuffers: 1 });
  const over = pool.open();
  const only = await pool.acquire();
  const order: string[] = [];
  const first = pool.acquire().then((buffer) => {
    order.push('first');
    return buffer;
  });
  const second = pool.acquire().then((buffer) => {
    order.push('second');
    return buffer;
  });
  assert.equal(pool.contended(), true);
  assert.equal(pool.stats().waiting, 2);
  pool.release(only);
  assert.equal(pool.tryAcquire(), undefined, 'a waiter is still queued');
  pool.release(await first);
  pool.release(await second);
  assert.deepEqual(order, ['first', 'second']);
  assert.deepEqual(pool.stats(), { bufferBytes: 16, maxBuffers: 1, allocated: 1, lent: 0, waiting: 0, streams: 1 });
  over();
});

test('an aborted wait takes nothing and leaves the queue', async () => {
  const pool = createBufferPool({ bufferBytes: 16, maxBuffers: 1 });
  const over = pool.open();
  const only = pool.tryAcquire();
  assert.ok(only !== undefined);
  const controller = new AbortController();
  const waiting = pool.acquire(controller.signal);
  controller.abort(new Error('client gone'));
  await assert.rejects(waiting, /client gone/);
  assert.equal(pool.stats().waiting, 0);
  await assert.rejects(pool.acquire(controller.signal), /client gone/);
  pool.release(only);
  over();
  assert.deepEqual(pool.stats(), { bufferBytes: 16, maxBuffers: 1, allocated: 0, lent: 0, waiting: 0, streams: 0 });
});
