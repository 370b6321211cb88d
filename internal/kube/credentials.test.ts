import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execCredentials, parseExecCredential, tokenFile } from './credentials.ts';
import type { ExecPlugin } from './kubeconfig.ts';

let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mirra-credentials-'));
});

after(() => rm(dir, { recursive: true, force: true }));

test('a token file is re-read after a minute or after a 401, not on every request', async () => {
  const path = join(dir, 'token');
  await writeFile(path, 'one\n');
  let now = 1_000_000;
  const credentials = tokenFile(path, () => now);
  assert.equal(await credentials.authorization(), 'Bearer one');
  await writeFile(path, 'two');
  now += 59_000;
  assert.equal(await credentials.authorization(), 'Bearer one', 'cached within the minute');
  now += 2000;
  assert.equal(await credentials.authorization(), 'Bearer two', 'rotated token picked up');
  await writeFile(path, 'three');
  credentials.invalidate();
  assert.equal(await credentials.authorization(), 'Bearer three', 'a 401 drops the cached token');
  await writeFile(path, '  \n');
  credentials.invalidate();
  await assert.rejects(credentials.authorization(), /the token file .*token is empty/);
  await rm(path);
  await assert.rejects(credentials.authorization(), /cannot read the token file .*ENOENT/);
});

/** A real plugin: a shell script that counts its runs and prints an ExecCredential. */
async function plugin(body: string): Promise<ExecPlugin> {
  const script = join(dir, `plugin-${Math.random().toString(36).slice(2)}.sh`);
  await writeFile(script, `#!/bin/sh\necho run >> "$0.runs"\n${body}\n`);
  await chmod(script, 0o755);
  return { command: script, args: ['--flag'], env: { MIRRA_TEST_TOKEN: 'from-env' }, apiVersion: 'client.authentication.k8s.io/v1', dir };
}

const runs = async (p: ExecPlugin): Promise<number> => (await readFile(`${p.command}.runs`, 'utf8').catch(() => '')).split('\n').filter(Boolean).length;

test('an exec plugin runs once for concurrent callers, gets its env and exec info, and is cached until it expires', async () => {
  const p = await plugin(
    `case "$KUBERNETES_EXEC_INFO" in *'"interactive":false'*) ;; *) exit 3 ;; esac
[ "$1" = --flag ] || exit 4
echo '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"'"$MIRRA_TEST_TOKEN"'","expirationTimestamp":"2030-01-01T00:00:00Z"}}'`,
  );
  let now = Date.parse('2029-12-31T23:00:00Z');
  const credentials = execCredentials(p, () => now);
  const answers = await Promise.all([credentials.authorization(), credentials.authorization(), credentials.authorization()]);
  assert.deepEqual(answers, ['Bearer from-env', 'Bearer from-env', 'Bearer from-env']);
  assert.equal(await runs(p), 1);
  now = Date.parse('2029-12-31T23:59:45Z');
  assert.equal(await credentials.authorization(), 'Bearer from-env');
  assert.equal(await runs(p), 1, 'still valid 15 s before expiry');
  now = Date.parse('2029-12-31T23:59:55Z');
  await credentials.authorization();
  assert.equal(await runs(p), 2, 'refreshed within 10 s of expiry');
  credentials.invalidate();
  await credentials.authorization();
  assert.equal(await runs(p), 3, 'refreshed after a 401');
});

test('a failing plugin is one clear error with its stderr, and the next call tries again', async () => {
  const p = await plugin('echo "login required: run sso login" >&2; exit 1');
  const credentials = execCredentials(p);
  await assert.rejects(credentials.authorization(), /the exec credential plugin .*plugin-.*\.sh failed: login required: run sso login/);
  await assert.rejects(credentials.authorization(), /login required/);
  assert.equal(await runs(p), 2);
  const missing = execCredentials({ ...p, command: join(dir, 'no-such-plugin') });
  await assert.rejects(missing.authorization(), /no-such-plugin failed: .*ENOENT/);
});

test('ExecCredential output is validated', () => {
  assert.deepEqual(parseExecCredential('{"status":{"token":"t"}}', 'p'), { token: 't', validUntil: Number.POSITIVE_INFINITY });
  assert.throws(() => parseExecCredential('not json', 'p'), /printed no JSON ExecCredential/);
  assert.throws(() => parseExecCredential('{"kind":"ExecCredential"}', 'p'), /printed no status/);
  assert.throws(() => parseExecCredential('{"status":{"token":""}}', 'p'), /returned no token/);
  assert.throws(
    () => parseExecCredential('{"status":{"clientCertificateData":"x","clientKeyData":"y"}}', 'p'),
    /client certificate: mirra supports tokens from plugins only/,
  );
});
