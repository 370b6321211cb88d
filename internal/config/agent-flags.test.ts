// The agent's flags (agent-flags.ts): defaults, flag over env over default,
// one-line errors naming the flag, the help text, durations.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { agentFlags, pullAccessProblem } from './agent-flags.ts';
import { flagHelp, parseDurationMs, parseFlags, UsageError } from './flags.ts';

test('defaults apply when neither flag nor env is set', () => {
  const { values } = parseFlags(agentFlags, [], {});
  assert.equal(values.containerdSock, '/run/containerd/containerd.sock');
  assert.equal(values.containerdNamespace, 'k8s.io');
  assert.deepEqual(values.registryAddr, { host: '0.0.0.0', port: 5000 });
  assert.deepEqual(values.mirroredRegistries, []);
  assert.equal(values.resolveTags, true);
  assert.equal(values.logLevel, 'info');
  assert.equal(values.statusIntervalMs, 180_000, '--status-interval 3m');
});

test('flags win over env, env over defaults', () => {
  const { values } = parseFlags(agentFlags, ['--registry-addr', '127.0.0.2:5001', '--resolve-tags=false'], {
    MIRRA_REGISTRY_ADDR: '127.0.0.3:9',
    MIRRA_MIRRORED_REGISTRIES: 'docker.io, https://ghcr.io',
    MIRRA_LOG_LEVEL: 'debug',
    MIRRA_STATUS_INTERVAL: '30s',
  });
  assert.deepEqual(values.registryAddr, { host: '127.0.0.2', port: 5001 });
  assert.deepEqual(values.mirroredRegistries, ['docker.io', 'ghcr.io']);
  assert.equal(values.resolveTags, false);
  assert.equal(values.logLevel, 'debug');
  assert.equal(values.statusIntervalMs, 30_000);
});

test('a bare boolean flag means true', () => {
  const { values } = parseFlags(agentFlags, ['--resolve-tags'], { MIRRA_RESOLVE_TAGS: 'false' });
  assert.equal(values.resolveTags, true);
});

test('bad values are one line naming the flag', () => {
  const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [['--registry-addr', 'nope'], {}, /--registry-addr/],
    [['--registry-addr', ':99999'], {}, /--registry-addr.*65535/],
    [['--log-level', 'loud'], {}, /--log-level/],
    [['--resolve-tags=maybe'], {}, /--resolve-tags/],
    [[], { MIRRA_MIRRORED_REGISTRIES: 'bad host!' }, /MIRRA_MIRRORED_REGISTRIES \(--mirrored-registries\)/],
    [['--containerd-namespace', '../x'], {}, /--containerd-namespace/],
    [['--status-interval', 'often'], {}, /--status-interval/],
    [['--peer-redirect-min-size', '16MB'], {}, /--peer-redirect-min-size: want a size such as 16Mi or a number of bytes, or off/],
    [['--no-such-flag'], {}, /no-such-flag/],
  ];
  for (const [argv, env, pattern] of cases) {
    assert.throws(
      () => parseFlags(agentFlags, argv, env),
      (err: unknown) => err instanceof UsageError && pattern.test(err.message) && !err.message.includes('\n'),
      `${argv.join(' ')} ${JSON.stringify(env)}`,
    );
  }
});

test('help lists every flag with its env and default', () => {
  const help = flagHelp(agentFlags);
  for (const spec of Object.values(agentFlags)) {
    assert.match(help, new RegExp(`--${spec.name}`));
    assert.match(help, new RegExp(spec.env));
  }
  assert.match(help, /default :5000/);
});

test('--peer-redirect-min-size: a size, or off', () => {
  assert.equal(parseFlags(agentFlags, [], {}).values.peerRedirectMinBytes, 16 * 1024 * 1024);
  assert.equal(parseFlags(agentFlags, ['--peer-redirect-min-size', '1Gi'], {}).values.peerRedirectMinBytes, 1024 * 1024 * 1024);
  assert.equal(parseFlags(agentFlags, [], { MIRRA_PEER_REDIRECT_MIN_SIZE: 'off' }).values.peerRedirectMinBytes, 'off');
});

test('durations', () => {
  assert.equal(parseDurationMs('250'), 250);
  assert.equal(parseDurationMs('2s'), 2000);
  assert.equal(parseDurationMs('1m'), 60_000);
  assert.throws(() => parseDurationMs('soon'));
});

test('--verify-pull-access: registries as configure takes them, and what it needs named in one line', () => {
  const { values } = parseFlags(
    agentFlags,
    ['--verify-pull-access', 'ghcr.io,http://127.0.0.1:5000', '--peer-secret-file', '/k', '--mirrored-registries', 'ghcr.io,127.0.0.1:5000'],
    {},
  );
  assert.deepEqual(values.verifyPullAccess, [
    { host: 'ghcr.io', server: 'https://ghcr.io' },
    { host: '127.0.0.1:5000', server: 'http://127.0.0.1:5000' },
  ]);
  assert.equal(pullAccessProblem(values), undefined);
  assert.deepEqual(parseFlags(agentFlags, [], {}).values.verifyPullAccess, []);
  assert.throws(
    () => parseFlags(agentFlags, ['--verify-pull-access', 'not a host/x/y'], {}),
    (err: Error) => err instanceof UsageError && /--verify-pull-access/.test(err.message),
  );
  const noAuth = parseFlags(agentFlags, ['--verify-pull-access', 'ghcr.io'], {}).values;
  assert.match(pullAccessProblem(noAuth) ?? '', /^--verify-pull-access needs peer auth: set --peer-secret-file/);
  const unmirrored = parseFlags(agentFlags, ['--verify-pull-access', 'quay.io', '--peer-secret-file', '/k', '--mirrored-registries', 'ghcr.io'], {}).values;
  assert.equal(pullAccessProblem(unmirrored), '--verify-pull-access lists quay.io, which --mirrored-registries does not: add it there too');
  const everything = parseFlags(agentFlags, ['--verify-pull-access', 'quay.io', '--peer-secret-file', '/k'], {}).values;
  assert.equal(pullAccessProblem(everything), undefined, 'an empty --mirrored-registries mirrors every registry');
});
