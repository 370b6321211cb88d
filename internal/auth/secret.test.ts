import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPeerKeys, parsePeerKeys, PeerSecretError } from './secret.ts';

test('one key per line: the first signs, all are accepted; whitespace and blank lines ignored', () => {
  const keys = parsePeerKeys('  new-key-0123456789abcdef \n\n old-key-0123456789abcdef\r\n');
  assert.equal(keys.signing.toString(), 'new-key-0123456789abcdef');
  assert.deepEqual(
    keys.accepted.map((k) => k.toString()),
    ['new-key-0123456789abcdef', 'old-key-0123456789abcdef'],
  );
});

test('empty, short or too many keys are errors naming the file', () => {
  assert.throws(() => parsePeerKeys(' \n', '/s'), /\/s is empty/);
  assert.throws(() => parsePeerKeys('0123456789abcdef0\nshort', '/s'), /line 2 is shorter than 16 bytes/);
  assert.throws(() => parsePeerKeys(Array.from({ length: 9 }, (_, i) => `key-${i}-0123456789abcdef`).join('\n'), '/s'), /at most 8/);
});

test('loadPeerKeys: a readable file; missing, directory and huge files are PeerSecretErrors', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mirra-secret-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const good = join(dir, 'key');
  await writeFile(good, 'k3y-0123456789abcdefXYZ\n');
  assert.equal((await loadPeerKeys(good)).signing.toString(), 'k3y-0123456789abcdefXYZ');
  await assert.rejects(
    loadPeerKeys(join(dir, 'missing')),
    (err: unknown) => err instanceof PeerSecretError && /cannot read peer secret .*ENOENT/.test(err.message),
  );
  await assert.rejects(loadPeerKeys(dir), (err: unknown) => err instanceof PeerSecretError && /not a regular file/.test(err.message));
  const huge = join(dir, 'huge');
  await writeFile(huge, 'x'.repeat(70 * 1024));
  await assert.rejects(loadPeerKeys(huge), /at most 65536/);
  const empty = join(dir, 'empty');
  await writeFile(empty, '');
  await assert.rejects(loadPeerKeys(empty), /is empty/);
});
