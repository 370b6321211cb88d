// The read ring: a buffer is read into again only once every view lent of it
// came back; views kept stay intact whatever is read after; giving back twice,
// or a part of a view, changes nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLentBuffers, createReadRing, giveBack } from './read-ring.ts';

/** One read of `bytes` as net's onread does it: the data lands in the buffer next() gave, then read() runs. */
function readInto(ring: ReturnType<typeof createReadRing>, target: Buffer, bytes: Buffer, lend: (view: Buffer) => void): void {
  bytes.copy(target);
  ring.read(bytes.length, (view) => lend(view));
}

/** `count` reads of 16 bytes (read i filled with i), each view lent and kept in `kept`; returns the buffer for the next read. */
function readAndKeep(ring: ReturnType<typeof createReadRing>, target: Buffer, count: number, kept: Buffer[]): Buffer {
  let next = target;
  for (let i = 0; i < count; i++) {
    readInto(ring, next, Buffer.alloc(16, i), (view) => {
      ring.lend(view);
      kept.push(view);
    });
    next = ring.next();
  }
  return next;
}

test('views given back at once: the same buffer is read into again and again', () => {
  const lent = createLentBuffers();
  const ring = createReadRing(lent, 16);
  let target = ring.next();
  for (let i = 0; i < 100; i++) {
    readInto(ring, target, Buffer.alloc(16, i), (view) => {
      ring.lend(view);
      assert.equal(view[0], i);
      assert.ok(giveBack(lent, view));
    });
    target = ring.next();
  }
  assert.equal(ring.allocated, 1);
});

test('a view kept is never written over; once given back its buffer is reused', () => {
  const lent = createLentBuffers();
  const ring = createReadRing(lent, 16);
  let target = ring.next();
  const kept: Buffer[] = [];
  target = readAndKeep(ring, target, 10, kept);
  assert.equal(ring.allocated, 11, 'every read went to a fresh buffer while all views were kept');
  kept.forEach((view, i) => assert.deepEqual(view, Buffer.alloc(16, i)));
  for (const view of kept) giveBack(lent, view);
  for (let i = 0; i < 50; i++) {
    readInto(ring, target, Buffer.alloc(16, 100 + i), (view) => {
      ring.lend(view);
      giveBack(lent, view);
    });
    target = ring.next();
  }
  assert.equal(ring.allocated, 11, 'the given-back buffers were reused');
});

test('two views of one read: the buffer waits for both', () => {
  const lent = createLentBuffers();
  const ring = createReadRing(lent, 16);
  const target = ring.next();
  const views: Buffer[] = [];
  readInto(ring, target, Buffer.from('aaaaaaaabbbbbbbb'), (bytes) => {
    for (const view of [bytes.subarray(0, 8), bytes.subarray(8)]) {
      ring.lend(view);
      views.push(view);
    }
  });
  giveBack(lent, views[0] as Buffer);
  const next = ring.next();
  assert.notEqual(next.buffer, target.buffer, 'one view is still out');
  Buffer.alloc(16, 0x7a).copy(next);
  assert.equal((views[1] as Buffer).toString(), 'bbbbbbbb');
});

test('giving back twice, a part of a view, or a chunk of nobody changes nothing', () => {
  const lent = createLentBuffers();
  const ring = createReadRing(lent, 16);
  const target = ring.next();
  let a: Buffer | undefined;
  let b: Buffer | undefined;
  readInto(ring, target, Buffer.from('0123456789abcdef'), (bytes) => {
    a = bytes.subarray(0, 8);
    b = bytes.subarray(8);
    ring.lend(a);
    ring.lend(b);
  });
  assert.ok(a !== undefined && b !== undefined);
  assert.equal(giveBack(lent, a), true);
  assert.equal(giveBack(lent, a), false, 'twice');
  assert.equal(giveBack(lent, b.subarray(0, 4)), false, 'a part');
  assert.equal(giveBack(lent, Buffer.alloc(8)), false, 'not lent');
  const next = ring.next();
  assert.notEqual(next.buffer, target.buffer, 'b is still out: its buffer is not read into');
  assert.equal(b.toString(), '89abcdef');
});

test('lending a view of another buffer is a programming error', () => {
  const ring = createReadRing(createLentBuffers(), 16);
  ring.next();
  assert.throws(() => ring.lend(Buffer.alloc(4)), /another buffer/);
});

test('trim keeps a few free buffers', () => {
  const lent = createLentBuffers();
  const ring = createReadRing(lent, 16);
  const views: Buffer[] = [];
  const target = readAndKeep(ring, ring.next(), 8, views);
  for (const view of views) giveBack(lent, view);
  ring.trim();
  const before = ring.allocated;
  // After the trim, at most the kept ones are reused before new ones are made.
  readAndKeep(ring, target, 6, views);
  assert.ok(ring.allocated > before, 'trimmed buffers are gone: new ones were made');
});

test('a body held whole and given back at once: the ring keeps 4 buffers of it, not all', () => {
  const lent = createLentBuffers();
  const ring = createReadRing(lent, 16);
  let target = ring.next();
  const held: Buffer[] = [];
  target = readAndKeep(ring, target, 100, held);
  for (const view of held) giveBack(lent, view);
  const before = ring.allocated;
  for (let i = 0; i < 40; i++) {
    readInto(ring, target, Buffer.alloc(16, i), (view) => ring.lend(view));
    target = ring.next();
  }
  assert.equal(ring.allocated - before, 40 - 4, 'the 4 kept were reused, then new ones made');
});
