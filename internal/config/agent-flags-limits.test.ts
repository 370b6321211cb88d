// The agent's flags for shutdown, load limits and load shedding.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { agentFlags } from './agent-flags.ts';
import { parseFlags, UsageError } from './flags.ts';

test('defaults', () => {
  const { values } = parseFlags(agentFlags, [], {});
  assert.equal(values.shutdownGraceMs, 20_000);
  assert.equal(values.maxPeerStreams, 32);
  assert.equal(values.clientIdleTimeoutMs, 30_000);
  assert.equal(values.maxRequests, 64);
  assert.equal(values.maxStreams, 512);
  assert.equal(values.maxEventLoopDelayMs, 200);
  assert.equal(values.maxEventLoopUtilization, 0);
  assert.equal(values.maxHeapUsedBytes, 'auto');
  assert.equal(values.maxRssBytes, 'auto');
});

test('values with units, from flags and env', () => {
  const { values } = parseFlags(agentFlags, ['--shutdown-grace', '5s', '--max-rss', '240Mi', '--max-heap-used=1Gi', '--max-event-loop-utilization', '0.9'], {
    MIRRA_MAX_PEER_STREAMS: '0',
    MIRRA_CLIENT_IDLE_TIMEOUT: '1m',
    MIRRA_MAX_REQUESTS: '128',
    MIRRA_MAX_STREAMS: '0',
  });
  assert.equal(values.shutdownGraceMs, 5000);
  assert.equal(values.maxRssBytes, 240 * 1024 * 1024);
  assert.equal(values.maxHeapUsedBytes, 1024 * 1024 * 1024);
  assert.equal(values.maxEventLoopUtilization, 0.9);
  assert.equal(values.maxPeerStreams, 0);
  assert.equal(values.clientIdleTimeoutMs, 60_000);
  assert.equal(values.maxRequests, 128);
  assert.equal(values.maxStreams, 0);
  assert.equal(parseFlags(agentFlags, ['--max-rss', '0'], {}).values.maxRssBytes, 0);
});

test('bad values name the flag', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--shutdown-grace', 'soon'], /--shutdown-grace/],
    [['--max-rss', '200MB'], /--max-rss/],
    [['--max-heap-used', '-1'], /--max-heap-used/],
    [['--max-event-loop-utilization', '1.5'], /--max-event-loop-utilization/],
    [['--max-peer-streams', 'many'], /--max-peer-streams/],
    [['--max-requests', '-3'], /--max-requests/],
  ];
  for (const [argv, pattern] of cases) {
    assert.throws(
      () => parseFlags(agentFlags, argv, {}),
      (err: unknown) => err instanceof UsageError && pattern.test(err.message),
      argv.join(' '),
    );
  }
});
