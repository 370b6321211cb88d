import assert from 'node:assert/strict';
import { test } from 'node:test';
import { agentFlags } from './agent-flags.ts';
import { cleanupFlags, configureFlags } from './configure-flags.ts';
import { parseFlags, UsageError } from './flags.ts';

test('configure defaults; flags and env', () => {
  const defaults = parseFlags(configureFlags, [], {}).values;
  assert.equal(defaults.certsDir, '/etc/containerd/certs.d');
  assert.deepEqual(defaults.mirroredRegistries, []);
  assert.deepEqual(defaults.mirrorTargets, []);
  assert.equal(defaults.resolveTags, true);
  assert.equal(defaults.prependExisting, false);

  const { values } = parseFlags(configureFlags, ['--mirror-targets', 'http://127.0.0.1:30020', '--resolve-tags=false', '--prepend-existing'], {
    MIRRA_MIRRORED_REGISTRIES: 'https://docker.io, ghcr.io,http://127.0.0.1:5000',
    MIRRA_CONTAINERD_REGISTRY_CONFIG_PATH: '/tmp/certs.d',
  });
  assert.equal(values.certsDir, '/tmp/certs.d');
  assert.deepEqual(values.mirroredRegistries, [
    { host: 'docker.io', server: 'https://registry-1.docker.io' },
    { host: 'ghcr.io', server: 'https://ghcr.io' },
    { host: '127.0.0.1:5000', server: 'http://127.0.0.1:5000' },
  ]);
  assert.deepEqual(values.mirrorTargets, ['http://127.0.0.1:30020']);
  assert.equal(values.resolveTags, false);
  assert.equal(values.prependExisting, true);
  assert.equal(parseFlags(cleanupFlags, ['--containerd-registry-config-path', '/x'], {}).values.certsDir, '/x');
});

test('bad configure values are one line naming the flag', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--mirrored-registries', 'docker.io/library'], /--mirrored-registries/],
    [['--mirrored-registries', 'docker.io,https://docker.io'], /--mirrored-registries.*twice/],
    [['--mirror-targets', '127.0.0.1:30020'], /--mirror-targets/],
    [['--mirror-targets', ','], /--mirror-targets.*at least one/],
    [['--containerd-registry-config-path', ''], /--containerd-registry-config-path/],
    [['--prepend-existing=perhaps'], /--prepend-existing/],
  ];
  for (const [argv, pattern] of cases) {
    assert.throws(
      () => parseFlags(configureFlags, argv, {}),
      (err: unknown) => err instanceof UsageError && pattern.test(err.message) && !err.message.includes('\n'),
      argv.join(' '),
    );
  }
});

test('the agent has the preflight flags', () => {
  const defaults = parseFlags(agentFlags, [], {}).values;
  assert.equal(defaults.containerdConfigPath, '/etc/containerd/config.toml');
  assert.equal(defaults.preflight, true);
  const { values } = parseFlags(agentFlags, ['--preflight=false', '--containerd-config-path', '/host/etc/containerd/config.toml'], {});
  assert.equal(values.preflight, false);
  assert.equal(values.containerdConfigPath, '/host/etc/containerd/config.toml');
  assert.equal(parseFlags(agentFlags, [], { MIRRA_PREFLIGHT: 'false' }).values.preflight, false);
});
