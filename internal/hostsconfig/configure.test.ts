import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse as parseToml } from 'smol-toml';
import { removeMirrorConfiguration } from './cleanup.ts';
import { writeMirrorConfiguration, type ConfigureOptions } from './configure.ts';
import { parseMirroredRegistry, parseMirrorTarget } from './registries.ts';

let root: string;
let count = 0;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'mirra-configure-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function freshDir(): Promise<string> {
  count += 1;
  return join(root, `certs-${count}`, 'certs.d');
}

function toml(text: string): Record<string, unknown> {
  return JSON.parse(JSON.stringify(parseToml(text))) as Record<string, unknown>;
}

/** Every file under dir as relative path -> text. */
async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out[path.slice(dir.length + 1)] = await readFile(path, 'utf8');
  }
  return out;
}

function options(certsDir: string, extra: Partial<ConfigureOptions> = {}): ConfigureOptions {
  return {
    certsDir,
    registries: ['docker.io', 'https://ghcr.io', 'http://127.0.0.1:5000'].map(parseMirroredRegistry),
    mirrorTargets: [parseMirrorTarget('http://127.0.0.1:30020/')],
    resolveTags: true,
    prependExisting: false,
    ...extra,
  };
}

test('writes one marked hosts.toml per registry: the agent first, the registry as server', async () => {
  const certsDir = await freshDir();
  const result = await writeMirrorConfiguration(options(certsDir));
  assert.deepEqual(
    result.written.map((w) => w.dir),
    ['docker.io', 'ghcr.io', '127.0.0.1:5000'],
  );
  assert.ok(result.written.every((w) => w.createdDir && w.backup === undefined));
  const files = await tree(certsDir);
  assert.deepEqual(Object.keys(files).sort(), ['127.0.0.1:5000/hosts.toml', 'docker.io/hosts.toml', 'ghcr.io/hosts.toml']);
  const docker = files['docker.io/hosts.toml'] ?? '';
  assert.match(docker, /^# managed by mirra/);
  assert.deepEqual(toml(docker), {
    server: 'https://registry-1.docker.io',
    host: { 'http://127.0.0.1:30020': { capabilities: ['pull', 'resolve'] } },
  });
  assert.equal(toml(files['ghcr.io/hosts.toml'] ?? '').server, 'https://ghcr.io');
  assert.equal(toml(files['127.0.0.1:5000/hosts.toml'] ?? '').server, 'http://127.0.0.1:5000');

  // Idempotent: a second run writes the same bytes and keeps no backup of its own file.
  await writeMirrorConfiguration(options(certsDir));
  assert.deepEqual(await tree(certsDir), files);

  // Cleanup removes exactly that, directories included.
  const actions = await removeMirrorConfiguration(certsDir);
  assert.equal(actions.filter((a) => a.action === 'removed').length, 3);
  assert.deepEqual(await readdir(certsDir), []);
});

test('--resolve-tags=false writes pull only; no registries writes _default without a server', async () => {
  const certsDir = await freshDir();
  await writeMirrorConfiguration(options(certsDir, { registries: [], resolveTags: false }));
  const files = await tree(certsDir);
  assert.deepEqual(Object.keys(files), ['_default/hosts.toml']);
  assert.deepEqual(toml(files['_default/hosts.toml'] ?? ''), { host: { 'http://127.0.0.1:30020': { capabilities: ['pull'] } } });
});

test('replaces an existing file but keeps it as a backup; cleanup puts it back byte for byte', async () => {
  const certsDir = await freshDir();
  const original = 'server = "https://registry-1.docker.io"\n\n[host."https://other-mirror.example.com"]\n  capabilities = ["pull"]\n';
  await mkdir(join(certsDir, 'docker.io'), { recursive: true });
  await writeFile(join(certsDir, 'docker.io', 'hosts.toml'), original);
  await writeFile(join(certsDir, 'docker.io', 'ca.crt'), 'not ours');
  await mkdir(join(certsDir, 'quay.io'));
  await writeFile(join(certsDir, 'quay.io', 'hosts.toml'), 'server = "https://quay.io"\n');

  const result = await writeMirrorConfiguration(options(certsDir, { registries: [parseMirroredRegistry('docker.io')] }));
  assert.equal(result.written[0]?.createdDir, false);
  assert.equal(result.written[0]?.backup, join(certsDir, 'docker.io', 'hosts.toml.mirra-backup'));
  const written = await tree(certsDir);
  assert.equal(written['docker.io/hosts.toml.mirra-backup'], original);
  assert.deepEqual(Object.keys(toml(written['docker.io/hosts.toml'] ?? '').host as object), ['http://127.0.0.1:30020']);

  // A second run must not back up its own file over the original.
  await writeMirrorConfiguration(options(certsDir, { registries: [parseMirroredRegistry('docker.io')] }));
  assert.equal(await readFile(join(certsDir, 'docker.io', 'hosts.toml.mirra-backup'), 'utf8'), original);

  const actions = await removeMirrorConfiguration(certsDir);
  assert.deepEqual(
    actions.map((a) => a.action),
    ['restored'],
  );
  assert.deepEqual(await tree(certsDir), {
    'docker.io/hosts.toml': original,
    'docker.io/ca.crt': 'not ours',
    'quay.io/hosts.toml': 'server = "https://quay.io"\n',
  });
});

test('--prepend-existing keeps the existing hosts after ours, also on a re-run', async () => {
  const certsDir = await freshDir();
  const original = 'server = "https://ghcr.io"\n\n[host."https://other-mirror.example.com"]\n  capabilities = ["pull"]\n';
  await mkdir(join(certsDir, 'ghcr.io'), { recursive: true });
  await writeFile(join(certsDir, 'ghcr.io', 'hosts.toml'), original);
  const opts = options(certsDir, { registries: [parseMirroredRegistry('ghcr.io')], prependExisting: true });
  for (let run = 0; run < 2; run++) {
    const result = await writeMirrorConfiguration(opts);
    assert.equal(result.written[0]?.prepended, true);
    const text = await readFile(join(certsDir, 'ghcr.io', 'hosts.toml'), 'utf8');
    assert.match(text, /^# managed by mirra/);
    const parsed = toml(text);
    assert.equal(parsed.server, 'https://ghcr.io');
    assert.deepEqual(Object.keys(parsed.host as object), ['http://127.0.0.1:30020', 'https://other-mirror.example.com']);
  }
  await removeMirrorConfiguration(certsDir);
  assert.deepEqual(await tree(certsDir), { 'ghcr.io/hosts.toml': original });
});

test('a registry dropped from the list loses its managed file on the next configure', async () => {
  const certsDir = await freshDir();
  await writeMirrorConfiguration(options(certsDir));
  const result = await writeMirrorConfiguration(options(certsDir, { registries: [parseMirroredRegistry('docker.io')] }));
  assert.deepEqual(
    result.stale
      .filter((a) => a.action === 'removed')
      .map((a) => a.path)
      .sort(),
    [join(certsDir, '127.0.0.1:5000', 'hosts.toml'), join(certsDir, 'ghcr.io', 'hosts.toml')],
  );
  assert.deepEqual(Object.keys(await tree(certsDir)), ['docker.io/hosts.toml']);
});

test('cleanup never touches what mirra did not write', async () => {
  const certsDir = await freshDir();
  assert.deepEqual(await removeMirrorConfiguration(certsDir), [], 'a missing certs.d is nothing to do');
  await writeMirrorConfiguration(options(certsDir, { registries: [parseMirroredRegistry('docker.io')] }));
  await writeFile(join(certsDir, 'docker.io', 'extra.crt'), 'someone else');
  // Someone replaced our file after configure: theirs stays, and so does our backup (none here).
  await mkdir(join(certsDir, 'ghcr.io'));
  await writeFile(join(certsDir, 'ghcr.io', 'hosts.toml'), 'server = "https://ghcr.io"\n');
  await writeFile(join(certsDir, 'ghcr.io', 'hosts.toml.mirra-backup'), 'old\n');
  const actions = await removeMirrorConfiguration(certsDir);
  assert.deepEqual(
    actions.map((a) => a.action),
    ['removed', 'kept', 'kept'],
  );
  assert.deepEqual(await tree(certsDir), {
    'docker.io/extra.crt': 'someone else',
    'ghcr.io/hosts.toml': 'server = "https://ghcr.io"\n',
    'ghcr.io/hosts.toml.mirra-backup': 'old\n',
  });
});

test('registry and target parsing', () => {
  assert.deepEqual(parseMirroredRegistry('docker.io'), { host: 'docker.io', server: 'https://registry-1.docker.io' });
  assert.deepEqual(parseMirroredRegistry('https://docker.io/'), { host: 'docker.io', server: 'https://registry-1.docker.io' });
  assert.deepEqual(parseMirroredRegistry('http://127.0.0.1:5000'), { host: '127.0.0.1:5000', server: 'http://127.0.0.1:5000' });
  for (const bad of ['ftp://x.io', 'docker.io/library', 'bad host', '', '../etc']) assert.throws(() => parseMirroredRegistry(bad), bad);
  assert.equal(parseMirrorTarget('http://127.0.0.1:30020/'), 'http://127.0.0.1:30020');
  assert.equal(parseMirrorTarget('https://[::1]:5000'), 'https://[::1]:5000');
  for (const bad of ['127.0.0.1:30020', 'ftp://a', 'http://u:p@a', 'http://a/v2', 'http://a?x=1', 'nope']) assert.throws(() => parseMirrorTarget(bad), bad);
});
