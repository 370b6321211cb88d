// --sendfile's choices and the addon's loading: `auto` never stops the agent
// (a reason instead), a path that does not load is a one-line error naming
// the flag, and an error code of the addon becomes an Error with its name.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CODE_FILE_ENDED, loadSendfile, parseSendfileChoice, sendfileError } from './sendfile-addon.ts';

test('--sendfile: auto, off, or a .node path; anything else names what it wants', () => {
  assert.deepEqual(parseSendfileChoice('auto'), { kind: 'auto' });
  assert.deepEqual(parseSendfileChoice(' off '), { kind: 'off' });
  assert.deepEqual(parseSendfileChoice('/app/dist/mirra-sendfile.node'), { kind: 'path', path: '/app/dist/mirra-sendfile.node' });
  for (const bad of ['', 'on', 'true', '/app/dist/mirra.mjs'])
    assert.throws(() => parseSendfileChoice(bad), /want auto, off, or the path of mirra-sendfile.node/);
});

test('auto without the addon, or with one that does not load: no addon and why; off: none', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mirra-sendfile-load-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const missing = join(dir, 'mirra-sendfile.node');
  assert.deepEqual(loadSendfile({ kind: 'auto' }, missing), { addon: undefined, reason: `no ${missing}` });
  const broken = join(dir, 'broken.node');
  await writeFile(broken, 'not a shared object');
  const load = loadSendfile({ kind: 'auto' }, broken);
  assert.ok(load.addon === undefined && load.reason.startsWith(`${broken} does not load: `), JSON.stringify(load));
  assert.ok(!load.reason.includes('\n'));
  assert.deepEqual(loadSendfile({ kind: 'off' }, broken), { addon: undefined, reason: '--sendfile=off' });
});

test('a path that does not load stops the agent with one line naming --sendfile and the fix', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mirra-sendfile-load-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const broken = join(dir, 'broken.node');
  await writeFile(broken, 'not a shared object');
  for (const path of [broken, join(dir, 'absent.node')]) {
    assert.throws(
      () => loadSendfile({ kind: 'path', path }),
      (err: Error) =>
        err.message.startsWith(`--sendfile ${path}: cannot load it (`) && err.message.endsWith('use --sendfile=auto or off') && !err.message.includes('\n'),
    );
  }
});

test("the addon's codes become errors with their names", () => {
  assert.equal(sendfileError(32, 10).code, 'EPIPE');
  assert.equal(sendfileError(110, 0).code, 'ETIMEDOUT');
  assert.equal(sendfileError(-104, 0).code, 'ECONNRESET');
  assert.match(sendfileError(CODE_FILE_ENDED, 5).message, /file ended after 5 more bytes/);
});
