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
  assert.equal(
    await checkContainerdConfig(await configFile(`version = 3\n[plugins.'io.containerd.cri.v1.images']\n  discard_unpacked_layers = false\n${V3}`)),
    undefined,
  );
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
  assert.match(
    (await checkContainerdConfig(await configFile(`version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  discard_unpacked_layers = "no"\n${V2}`))) ??
      '',
    /not a boolean/,
  );
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
  const main = await configFile(
    'version = 2\nimports = ["conf.d/*.toml", "/nonexistent/dir/*.toml"]\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  discard_unpacked_layers = true\n',
  );
  assert.match((await checkContainerdConfig(main)) ?? '', /discard_unpacked_layers = true in .*config-\d+\.toml/);
  await writeFile(join(dir, 'conf.d', '20-layers.toml'), 'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  discard_unpacked_layers = false\n');
  assert.equal(await checkContainerdConfig(main), undefined);
  const explicit = await configFile(`version = 2\nimports = ["/nonexistent/containerd.toml"]\n${V2}`);
  assert.match((await checkContainerdConfig(explicit)) ?? '', /imports \/nonexistent\/containerd\.toml, which is not readable here/);
});

// containerd 2.x: a `:`-separated config_path is read as one directory by the transfer service (2.1+).
const V21 = { known: true, text: '2.1.9', major: 2, minor: 1 } as const;
const V20 = { known: true, text: '2.0.7', major: 2, minor: 0 } as const;
const V17 = { known: true, text: '1.7.24~ds1', major: 1, minor: 7 } as const;
const UNKNOWN = {
  known: false,
  reason: 'cannot ask containerd at /run/containerd/containerd.sock its version: 14 UNAVAILABLE: No connection established',
} as const;

/** `containerd config default` of 2.1.9, trimmed to the top and the CRI images plugin; `configPath` and `extra` (lines in the images table) vary. */
function default21(configPath: string, extra = ''): string {
  return `version = 3
root = '/var/lib/containerd'
state = '/run/containerd'
temp = ''
disabled_plugins = []
required_plugins = []
oom_score = 0
imports = []

[grpc]
  address = '/run/containerd/containerd.sock'

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    disable_snapshot_annotations = true
    discard_unpacked_layers = false
    max_concurrent_downloads = 3
    concurrent_layer_fetch_buffer = 0
    image_pull_progress_timeout = '5m0s'
    image_pull_with_sync_fs = false
    stats_collect_period = 10
    use_local_image_pull = false
${extra}
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = 'registry.k8s.io/pause:3.10'

    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = '${configPath}'

    [plugins.'io.containerd.cri.v1.images'.image_decryption]
      key_model = 'node'

  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
`;
}

/** containerd 2.2's default: its Linux default config_path is the list (here as a node would write it out). */
const DEFAULT_22 = `version = 3
root = '/var/lib/containerd'
state = '/run/containerd'

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    disable_snapshot_annotations = true
    discard_unpacked_layers = false
    max_concurrent_downloads = 3
    use_local_image_pull = false

    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = '/etc/containerd/certs.d:/etc/docker/certs.d'
`;

test('2.1+ with a `:` list: one line naming the version, the setting, the file, the table and both fixes', async () => {
  const file = await configFile(default21('/etc/containerd/certs.d:/etc/docker/certs.d'));
  assert.equal(
    await checkContainerdConfig(file, V21),
    `containerd 2.1.9 pulls through its transfer service, which takes config_path as one directory: config_path = "/etc/containerd/certs.d:/etc/docker/certs.d" in ${file} [plugins."io.containerd.cri.v1.images".registry] makes it ignore every hosts.toml; set config_path = "/etc/containerd/certs.d", or use_local_image_pull = true in [plugins."io.containerd.cri.v1.images"], and restart containerd`,
  );
  const v22 = await configFile(DEFAULT_22);
  assert.match(
    (await checkContainerdConfig(v22, { known: true, text: '2.2.1', major: 2, minor: 2 })) ?? '',
    /^containerd 2\.2\.1 pulls through its transfer service, .* in \S+ \[plugins\."io\.containerd\.cri\.v1\.images"\.registry\] makes it ignore/,
  );
  assert.match(
    (await checkContainerdConfig(v22, { known: true, text: '3.0.0', major: 3, minor: 0 })) ?? '',
    /^containerd 3\.0\.0 pulls through its transfer service/,
  );
  // The suggested directory is the list's first; a trailing `:` is still a list to the transfer service.
  const odd = await configFile(default21(':/srv/certs.d:'));
  assert.match((await checkContainerdConfig(odd, V21)) ?? '', /set config_path = "\/srv\/certs\.d", or use_local_image_pull = true/);
});

test('2.1+ pulling locally (use_local_image_pull, or a setting the transfer service lacks) takes a `:` list', async () => {
  const list = '/etc/containerd/certs.d:/etc/docker/certs.d';
  const localPulls: Array<[string, string]> = [
    ['use_local_image_pull = false', 'use_local_image_pull = true'],
    ['disable_snapshot_annotations = true', 'disable_snapshot_annotations = false'],
    ['max_concurrent_downloads = 3', 'max_concurrent_downloads = 6'],
    ['image_pull_with_sync_fs = false', 'image_pull_with_sync_fs = true'],
  ];
  for (const [from, to] of localPulls) {
    assert.equal(await checkContainerdConfig(await configFile(default21(list).replace(from, to)), V21), undefined, to);
  }
  const configs = `${default21(list)}\n    [plugins.'io.containerd.cri.v1.images'.registry.configs.'registry.example.com'.auth]\n      username = 'u'\n`;
  assert.equal(await checkContainerdConfig(await configFile(configs), V21), undefined);
  // Set in an import, as containerd merges it.
  await writeFile(join(dir, 'local-pull.toml'), "version = 3\n[plugins.'io.containerd.cri.v1.images']\n  use_local_image_pull = true\n");
  assert.equal(
    await checkContainerdConfig(
      await configFile(DEFAULT_22.replace("state = '/run/containerd'", "state = '/run/containerd'\nimports = ['local-pull.toml']")),
      V21,
    ),
    undefined,
  );
  // An import that turns it back off wins, as the last one does in containerd.
  await writeFile(join(dir, 'transfer-pull.toml'), "version = 3\n[plugins.'io.containerd.cri.v1.images']\n  use_local_image_pull = false\n");
  const both = DEFAULT_22.replace("state = '/run/containerd'", "state = '/run/containerd'\nimports = ['local-pull.toml', 'transfer-pull.toml']");
  assert.match((await checkContainerdConfig(await configFile(both), V21)) ?? '', /transfer service/);
});

test('2.1+ with one directory passes; 1.x and 2.0 split a `:` list themselves', async () => {
  assert.equal(await checkContainerdConfig(await configFile(default21('/etc/containerd/certs.d')), V21), undefined);
  assert.equal(await checkContainerdConfig(await configFile(DEFAULT_22), V20), undefined);
  const v2 = await configFile('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"\n');
  assert.equal(await checkContainerdConfig(v2, V17), undefined);
  assert.equal(await checkContainerdConfig(v2, { known: true, text: '1.6.20~ds1', major: 1, minor: 6 }), undefined);
  // containerd 2.1 reading that version 2 file migrates it, and pulls through the transfer service all the same.
  assert.match(
    (await checkContainerdConfig(v2, V21)) ?? '',
    new RegExp(`config_path = "/etc/containerd/certs\\.d:/etc/docker/certs\\.d" in ${v2} \\[plugins\\."io\\.containerd\\.grpc\\.v1\\.cri"\\.registry\\]`),
  );
  // ... unless the migrated CRI settings make it pull locally (legacy registry configs, here).
  const legacy = await configFile(
    'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/a:/b"\n[plugins."io.containerd.grpc.v1.cri".registry.configs."gcr.io".auth]\n  username = "_json_key"\n',
  );
  assert.equal(await checkContainerdConfig(legacy, V21), undefined);
});

test('an unknown containerd version counts as 2.1+, and says why it is unknown', async () => {
  const file = await configFile(DEFAULT_22);
  const message = await checkContainerdConfig(file, UNKNOWN);
  assert.equal(
    message,
    `containerd's version is unknown (${UNKNOWN.reason}), and 2.1 and later pull through the transfer service, which takes config_path as one directory: config_path = "/etc/containerd/certs.d:/etc/docker/certs.d" in ${file} [plugins."io.containerd.cri.v1.images".registry] makes it ignore every hosts.toml; set config_path = "/etc/containerd/certs.d", or use_local_image_pull = true in [plugins."io.containerd.cri.v1.images"], and restart containerd`,
  );
  assert.equal(await checkContainerdConfig(await configFile(default21('/etc/containerd/certs.d')), UNKNOWN), undefined);
  // Without a version the version-dependent check is skipped, as before.
  assert.equal(await checkContainerdConfig(file), undefined);
  // The other rules come first, whatever the version.
  assert.match((await checkContainerdConfig(await configFile(default21('')), V21)) ?? '', /^containerd has no registry config_path \(config_path = ""/);
});
