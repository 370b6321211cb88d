import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { checkContainerdConfig } from './preflight.ts';

let dir: string;
let count = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mirra-preflight-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function configFile(text: string, name = `config-${++count}.toml`): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

const V2 = '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"\n';
const V3 = "[plugins.'io.containerd.cri.v1.images'.registry]\n  config_path = '/etc/containerd/certs.d:/etc/docker/certs.d'\n";

test('good configs pass: version 2, 3 and 1 (discard_unpacked_layers absent means false)', async () => {
  assert.equal(await checkContainerdConfig(await configFile(`version = 2\n${V2}`)), undefined);
  assert.equal(
    await checkContainerdConfig(
      await configFile(`version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  discard_unpacked_layers = false\n  snapshotter = "overlayfs"\n${V2}`),
    ),
    undefined,
  );
  assert.equal(await checkContainerdConfig(await configFile(`version = 3\n[plugins.'io.containerd.cri.v1.images']\n  discard_unpacked_layers = false\n${V3}`)), undefined);
  assert.equal(await checkContainerdConfig(await configFile('[plugins.cri.registry]\n  config_path = "/etc/containerd/certs.d"\n')), undefined);
});

test('discard_unpacked_layers = true names the setting, the file, the table and the fix', async () => {
  const v2 = await configFile(`version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  discard_unpacked_layers = true\n${V2}`);
  const message = await checkContainerdConfig(v2);
  assert.equal(
    message,
    `containerd discards unpacked layers (discard_unpacked_layers = true in ${v2} [plugins."io.containerd.grpc.v1.cri".containerd]); set it to false and restart containerd, or peers cannot serve this node's layers`,
  );
  const v3 = await configFile(`version = 3\n[plugins."io.containerd.cri.v1.images"]\n  discard_unpacked_layers = true\n${V3}`);
  assert.match((await checkContainerdConfig(v3)) ?? '', /discard_unpacked_layers = true in .* \[plugins\."io\.containerd\.cri\.v1\.images"\]/);
  assert.match((await checkContainerdConfig(await configFile(`version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  discard_unpacked_layers = "no"\n${V2}`))) ?? '', /not a boolean/);
});

test('a missing or empty config_path is a failure', async () => {
  const unset = await configFile('version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  snapshotter = "overlayfs"\n');
  assert.equal(
    await checkContainerdConfig(unset),
    `containerd has no registry config_path (config_path is not set in ${unset} [plugins."io.containerd.grpc.v1.cri".registry]); set config_path = "/etc/containerd/certs.d" there and restart containerd, or containerd ignores mirra's hosts.toml files`,
  );
  const empty = await configFile('version = 3\n[plugins."io.containerd.cri.v1.images".registry]\n  config_path = ""\n');
  assert.match((await checkContainerdConfig(empty)) ?? '', /config_path = "" in .*\[plugins\."io\.containerd\.cri\.v1\.images"\.registry\]/);
  // A version 2 file with the version 3 layout is still wrong for the containerd that reads it as version 2.
  assert.match((await checkContainerdConfig(await configFile(`version = 2\n${V3}`))) ?? '', /no registry config_path/);
});

test('missing, unparsable and unknown-version files are one clear line', async () => {
  const missing = join(dir, 'nope', 'config.toml');
  const message = await checkContainerdConfig(missing);
  assert.match(message ?? '', new RegExp(`containerd config ${missing} not found: mount .*--preflight=false`));
  assert.match((await checkContainerdConfig(await configFile('version = 2\n[plugins\nx = 1\n'))) ?? '', /^cannot parse containerd config \S+: /);
  assert.match((await checkContainerdConfig(await configFile('version = 9\n'))) ?? '', /version = 9; mirra knows versions 1, 2 and 3/);
  for (const m of [message, await checkContainerdConfig(await configFile('version = 2\n[plugins\nx = 1\n'))]) assert.doesNotMatch(m ?? '', /\n/);
});

test('imports are read over the main file; a glob import may match nothing; a missing explicit import is named', async () => {
  await mkdir(join(dir, 'conf.d'));
  await writeFile(join(dir, 'conf.d', '10-registry.toml'), `version = 2\n${V2}`);
  const main = await configFile('version = 2\nimports = ["conf.d/*.toml", "/nonexistent/dir/*.toml"]\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  discard_unpacked_layers = true\n');
  assert.match((await checkContainerdConfig(main)) ?? '', /discard_unpacked_layers = true in .*config-\d+\.toml/);
  await writeFile(join(dir, 'conf.d', '20-layers.toml'), 'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  discard_unpacked_layers = false\n');
  assert.equal(await checkContainerdConfig(main), undefined);
  const explicit = await configFile(`version = 2\nimports = ["/nonexistent/containerd.toml"]\n${V2}`);
  assert.match((await checkContainerdConfig(explicit)) ?? '', /imports \/nonexistent\/containerd\.toml, which is not readable here/);
});
