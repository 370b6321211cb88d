import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, open, readdir, readlink, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { once } from 'node:events';
import { test } from 'node:test';
import { findIngestData, followIngest, IngestStalledError, isBackingRefOf } from './ingest-follow.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const hex = (text: string): string => createHash('sha256').update(text).digest('hex');

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mirra-ingest-follow-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Everything the stream delivers, in order, and how it ended. */
async function collect(stream: Readable): Promise<{ bytes: Buffer; error: unknown }> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return { bytes: Buffer.concat(chunks), error: undefined };
  } catch (err) {
    return { bytes: Buffer.concat(chunks), error: err };
  }
}

/** Appends `parts` to `path` one after the other, `delayMs` apart. */
async function appendSlowly(path: string, parts: readonly Buffer[], delayMs: number): Promise<void> {
  for (const part of parts) {
    await sleep(delayMs);
    await appendFile(path, part);
  }
}

/** The open descriptors of this process that point at `path` (Linux: /proc/self/fd). */
async function descriptorsOf(path: string): Promise<number> {
  let count = 0;
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(join('/proc/self/fd', fd)).catch(() => '');
    if (target === path || target === `${path} (deleted)`) count++;
  }
  return count;
}

test('bytes appended in steps are delivered exactly and in order, then the stream ends at `end`', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'data');
  const parts = [randomBytes(1000), randomBytes(1), randomBytes(70_000), randomBytes(4096), randomBytes(333)];
  const all = Buffer.concat(parts);
  await writeFile(path, '');
  let counted = 0;
  const stream = await followIngest({ path, start: 0, end: all.length - 1, stallMs: 2000, onBytes: (n) => (counted += n) });
  const [result] = await Promise.all([collect(stream), appendSlowly(path, parts, 20)]);
  assert.equal(result.error, undefined);
  assert.equal(result.bytes.length, all.length);
  assert.ok(result.bytes.equals(all), 'the same bytes in the same order');
  assert.equal(counted, all.length, 'onBytes told of every byte');
});

test('the stream ends at `end` even when the file holds more, and starts at `start`', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'data');
  const all = randomBytes(10_000);
  await writeFile(path, all.subarray(0, 100));
  const stream = await followIngest({ path, start: 50, end: 6_999, stallMs: 2000 });
  const [result] = await Promise.all([collect(stream), appendSlowly(path, [all.subarray(100, 3000), all.subarray(3000)], 15)]);
  assert.equal(result.error, undefined);
  assert.ok(result.bytes.equals(all.subarray(50, 7000)), `bytes 50..6999 (got ${result.bytes.length})`);
});

test('a start beyond what is written waits for the bytes to get there', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'data');
  const all = randomBytes(5000);
  await writeFile(path, all.subarray(0, 10));
  const stream = await followIngest({ path, start: 4000, end: 4999, stallMs: 2000 });
  const [result] = await Promise.all([collect(stream), appendSlowly(path, [all.subarray(10, 2000), all.subarray(2000)], 20)]);
  assert.equal(result.error, undefined);
  assert.ok(result.bytes.equals(all.subarray(4000)));
});

test('the data file renamed mid-stream (containerd commits it into blobs/) still delivers everything', async (t) => {
  const dir = await tempDir(t);
  const ingest = join(dir, 'ingest', hex('ref'));
  const blobs = join(dir, 'blobs', 'sha256');
  await mkdir(ingest, { recursive: true });
  await mkdir(blobs, { recursive: true });
  const path = join(ingest, 'data');
  const all = randomBytes(200_000);
  const writer = await open(path, 'a');
  t.after(() => writer.close());
  await writer.write(all.subarray(0, 50_000));
  const stream = await followIngest({ path, start: 0, end: all.length - 1, stallMs: 2000 });
  const writing = (async () => {
    await sleep(20);
    await writer.write(all.subarray(50_000, 120_000));
    await sleep(20);
    await rename(path, join(blobs, hex('blob')));
    await sleep(20);
    await writer.write(all.subarray(120_000));
  })();
  const [result] = await Promise.all([collect(stream), writing]);
  assert.equal(existsSync(path), false, 'the file was renamed away');
  assert.equal(result.error, undefined);
  assert.ok(result.bytes.equals(all));
});

test('a file that stops growing ends the stream with IngestStalledError after about stallMs', { timeout: 3000 }, async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'data');
  const head = randomBytes(700);
  await writeFile(path, head);
  const stream = await followIngest({ path, start: 0, end: 9_999, stallMs: 100 });
  const started = performance.now();
  const result = await collect(stream);
  const elapsedMs = performance.now() - started;
  assert.ok(result.error instanceof IngestStalledError, `stalled, not ${String(result.error)}`);
  assert.ok(result.bytes.equals(head), 'what was there was delivered first');
  assert.ok(elapsedMs >= 90 && elapsedMs < 1000, `ended after ${elapsedMs} ms`);
  assert.equal(stream.destroyed, true);
});

test('a fetch said to be alive (waiting for a download slot) is waited for past stallMs; once it is not, the stream stalls', { timeout: 3000 }, async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'data');
  await writeFile(path, '');
  let alive = true;
  const stream = await followIngest({ path, start: 0, end: 199, stallMs: 50, live: () => alive });
  const result = collect(stream);
  await sleep(250);
  assert.equal(stream.destroyed, false, 'still waiting after five times stallMs');
  const bytes = randomBytes(100);
  await appendFile(path, bytes);
  await sleep(100);
  alive = false;
  const ended = await result;
  assert.ok(ended.error instanceof IngestStalledError, `stalled, not ${String(ended.error)}`);
  assert.ok(ended.bytes.equals(bytes), 'what arrived while waiting was delivered');
});

test('growth resets the stall clock: pauses shorter than stallMs do not end the stream', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'data');
  const parts = Array.from({ length: 6 }, () => randomBytes(100));
  await writeFile(path, '');
  const stream = await followIngest({ path, start: 0, end: 599, stallMs: 300 });
  const [result] = await Promise.all([collect(stream), appendSlowly(path, parts, 60)]);
  assert.equal(result.error, undefined, 'six pauses of 60 ms (360 ms in all) with stallMs 300');
  assert.ok(result.bytes.equals(Buffer.concat(parts)));
});

test('destroying the stream early closes the file handle', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'data');
  await writeFile(path, randomBytes(1000));
  const stream = await followIngest({ path, start: 0, end: 1_000_000, stallMs: 5000 });
  const proc = existsSync('/proc/self/fd');
  if (proc) assert.equal(await descriptorsOf(path), 1, 'the follower holds the file open');
  const first: unknown = await new Promise((resolve) => stream.once('data', resolve));
  assert.ok(Buffer.isBuffer(first) && first.length === 1000);
  const closed = once(stream, 'close');
  stream.destroy();
  await closed;
  if (proc) assert.equal(await descriptorsOf(path), 0, 'no descriptor of the file is left open');
  await rm(path);
  assert.equal(existsSync(path), false);
});

test('destroying a stream waiting for growth stops its polling (no error, no further reads)', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'data');
  await writeFile(path, '');
  let counted = 0;
  const stream = await followIngest({ path, start: 0, end: 99, stallMs: 200, onBytes: (n) => (counted += n) });
  const errors: unknown[] = [];
  stream.on('error', (err) => errors.push(err));
  stream.resume();
  await sleep(30);
  const closed = once(stream, 'close');
  stream.destroy();
  await closed;
  await appendFile(path, randomBytes(100));
  await sleep(300);
  assert.deepEqual(errors, [], 'no stall error after the stream was destroyed');
  assert.equal(counted, 0, 'nothing read after destroy');
});

test('opening a missing file rejects with ENOENT', async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(followIngest({ path: join(dir, 'gone', 'data'), start: 0, end: 9, stallMs: 100 }), { code: 'ENOENT' });
});

test('isBackingRefOf: <namespace>/<numeric id>/<ref> only', () => {
  const ref = 'layer-sha256:abc';
  assert.equal(isBackingRefOf(`k8s.io/12/${ref}`, 'k8s.io', ref), true);
  assert.equal(isBackingRefOf(`k8s.io/0/${ref}`, 'k8s.io', ref), true);
  assert.equal(isBackingRefOf(`moby/12/${ref}`, 'k8s.io', ref), false, 'other namespace');
  assert.equal(isBackingRefOf(`k8s.io.x/12/${ref}`, 'k8s.io', ref), false, 'namespace as a prefix');
  assert.equal(isBackingRefOf(`k8s.io/1a/${ref}`, 'k8s.io', ref), false, 'non-numeric id');
  assert.equal(isBackingRefOf(`k8s.io//${ref}`, 'k8s.io', ref), false, 'empty id');
  assert.equal(isBackingRefOf(`k8s.io/${ref}`, 'k8s.io', ref), false, 'no id');
  assert.equal(isBackingRefOf(`k8s.io/12/3/${ref}`, 'k8s.io', ref), false, 'two ids');
  assert.equal(isBackingRefOf('k8s.io/12/layer-sha256:abd', 'k8s.io', ref), false, 'other ref');
  assert.equal(isBackingRefOf(`k8s.io/12/x${ref}`, 'k8s.io', ref), false, 'ref as a suffix of another');
  assert.equal(isBackingRefOf(`k8s.io/12/${ref}x`, 'k8s.io', ref), false, 'ref as a prefix of another');
});

test('findIngestData: the data file of the directory whose ref file is the backing ref; junk names ignored', async (t) => {
  const dir = await tempDir(t);
  const ref = 'layer-sha256:' + hex('layer');
  const ingestDir = (name: string) => join(dir, 'ingest', name);
  const make = async (name: string, backing: string) => {
    await mkdir(ingestDir(name), { recursive: true });
    await writeFile(join(ingestDir(name), 'ref'), backing);
    await writeFile(join(ingestDir(name), 'data'), 'bytes');
  };
  // Junk names (not 64 hex digits) whose ref would match: never looked at.
  await make('not-a-hex-name', `k8s.io/1/${ref}`);
  await make(hex('a').toUpperCase(), `k8s.io/2/${ref}`);
  await make(hex('b').slice(1), `k8s.io/3/${ref}`);
  await make(hex('other ns'), `moby/4/${ref}`);
  await make(hex('other ref'), 'k8s.io/5/layer-sha256:' + hex('another'));
  await mkdir(ingestDir(hex('no ref file')), { recursive: true });
  assert.equal(await findIngestData(dir, 'k8s.io', ref), undefined, 'no matching directory yet');
  await make(hex('match'), `k8s.io/6/${ref}`);
  assert.equal(await findIngestData(dir, 'k8s.io', ref), join(dir, 'ingest', hex('match'), 'data'));
  assert.equal(await findIngestData(dir, 'moby', ref), join(dir, 'ingest', hex('other ns'), 'data'));
  assert.equal(await findIngestData(dir, 'k8s.io', 'layer-sha256:' + hex('nothing')), undefined);
});

test('findIngestData: no ingest directory is undefined', async (t) => {
  const dir = await tempDir(t);
  assert.equal(await findIngestData(dir, 'k8s.io', 'layer-sha256:abc'), undefined);
  assert.equal(await findIngestData(join(dir, 'missing'), 'k8s.io', 'layer-sha256:abc'), undefined);
});
