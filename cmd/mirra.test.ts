import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const MIRRA = fileURLToPath(new URL('./mirra.ts', import.meta.url));

function mirra(args: string[], env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(process.execPath, [MIRRA, ...args], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', timeout: 20_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('mirra registry --help lists every flag with its default', () => {
  const { code, stdout } = mirra(['registry', '--help']);
  assert.equal(code, 0);
  for (const flag of [
    '--containerd-sock',
    '--containerd-namespace',
    '--containerd-content-path',
    '--registry-addr',
    '--mirrored-registries',
    '--resolve-tags',
    '--log-level',
  ]) {
    assert.match(stdout, new RegExp(flag));
  }
  assert.match(stdout, /default \/run\/containerd\/containerd\.sock/);
  assert.match(stdout, /default k8s\.io/);
});

test('a bad flag value is one line naming the flag, exit code 2', () => {
  for (const [args, env, flag] of [
    [['registry', '--registry-addr', 'localhost'], {}, '--registry-addr'],
    [['registry', '--log-level', 'chatty'], {}, '--log-level'],
    [['registry'], { MIRRA_RESOLVE_TAGS: 'perhaps' }, 'MIRRA_RESOLVE_TAGS'],
    [['registry', '--bogus'], {}, '--bogus'],
    [['registry', '--node-ip', 'node-1'], {}, '--node-ip'],
    [['registry'], { NODE_IP: '10.0.0.999' }, 'NODE_IP'],
    [['registry', '--local-clients', '10.0.0.0/8,10.1.0.0/99'], {}, '--local-clients'],
  ] as const) {
    const { code, stderr } = mirra([...args], env);
    assert.equal(code, 2, stderr);
    assert.equal(stderr.trim().split('\n').length, 1, stderr);
    assert.ok(stderr.includes(flag), stderr);
  }
});

test('a peer secret file that is missing, empty or too short is one line naming it, exit code 1', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mirra-cmd-secret-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'empty'), '\n');
  writeFileSync(join(dir, 'short'), 'tooshort\n');
  for (const [file, message] of [
    [join(dir, 'missing'), /cannot read peer secret .*missing: ENOENT/],
    [join(dir, 'empty'), /empty is empty/],
    [join(dir, 'short'), /shorter than 16 bytes/],
  ] as const) {
    const { code, stderr } = mirra(['registry', '--preflight=false', '--peer-secret-file', file]);
    assert.equal(code, 1, stderr);
    assert.equal(stderr.trim().split('\n').length, 1, stderr);
    assert.match(stderr, message);
  }
});

test('unknown commands exit 2; help exits 0', () => {
  assert.equal(mirra(['frobnicate']).code, 2);
  const help = mirra(['help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /registry/);
});
