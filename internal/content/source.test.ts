import assert from 'node:assert/strict';
import { text } from 'node:stream/consumers';
import { test } from 'node:test';
import { createMemoryStore } from '../oci/storetest/memory-store.ts';
import { chainSources, storeSource } from './source.ts';

const REQUEST = { registry: 'docker.io', name: 'library/nginx' };

test('storeSource resolves tags via the image reference and locates content', async () => {
  const store = createMemoryStore();
  const digest = store.put('hello', 'application/octet-stream');
  store.tag('docker.io/library/nginx:1.27', digest);
  const source = storeSource(store);
  assert.deepEqual(await source.resolveTag(REQUEST, '1.27'), { digest, source: 'local' });
  assert.equal(await source.resolveTag({ registry: 'ghcr.io', name: 'library/nginx' }, '1.27'), undefined);
  assert.equal(await source.resolveTag(REQUEST, '1.28'), undefined);
  const located = await source.locate(REQUEST, digest);
  assert.ok(located);
  assert.deepEqual(located.info, { digest, size: 5, mediaType: 'application/octet-stream' });
  assert.equal(located.source, 'local');
  assert.equal(await text(await located.read({ start: 1, end: 3 })), 'ell');
  assert.equal(await source.locate(REQUEST, `sha256:${'0'.repeat(64)}`), undefined);
});

test('chainSources asks in order and the first hit answers', async () => {
  const first = createMemoryStore();
  const second = createMemoryStore();
  const onlySecond = second.put('second');
  const both = first.put('both');
  second.put('both');
  second.tag('docker.io/library/nginx:v1', onlySecond);
  const chain = chainSources([storeSource(first, 'local'), storeSource(second, 'peer-a')]);
  assert.equal((await chain.locate(REQUEST, both))?.source, 'local');
  assert.equal((await chain.locate(REQUEST, onlySecond))?.source, 'peer-a');
  assert.deepEqual(await chain.resolveTag(REQUEST, 'v1'), { digest: onlySecond, source: 'peer-a' });
  assert.equal(await chain.locate(REQUEST, `sha256:${'1'.repeat(64)}`), undefined);
  assert.equal(await chain.resolveTag(REQUEST, 'v2'), undefined);
  assert.equal(await chainSources([]).locate(REQUEST, both), undefined);
});

test('storeSource offers the file fast path only for file-backed stores', async () => {
  const store = createMemoryStore();
  const digest = store.put('bytes');
  assert.equal((await storeSource(store).locate(REQUEST, digest))?.openFile, undefined);
  const asked: string[] = [];
  const fileBacked = {
    ...store,
    openFile: async (d: string) => {
      asked.push(d);
      return undefined;
    },
  };
  const located = await storeSource(fileBacked).locate(REQUEST, digest);
  assert.equal(await located?.openFile?.(), undefined);
  assert.deepEqual(asked, [digest]);
});
