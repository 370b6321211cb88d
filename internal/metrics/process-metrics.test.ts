// The process and Node.js metrics: the names prom-client's defaults had (the
// dashboard, the e2e tests and the benches read them), values that agree
// with the process, the delay monitor reset by each scrape, and the parsers
// of the /proc files.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { parseExposition, sumSamples } from '../../tests/support/exposition.ts';
import { maxOpenFiles, procStatusBytes, registerProcessMetrics } from './process-metrics.ts';
import { Registry } from './registry.ts';

const NAMES = [
  'process_cpu_user_seconds_total',
  'process_cpu_system_seconds_total',
  'process_cpu_seconds_total',
  'process_start_time_seconds',
  'process_resident_memory_bytes',
  'nodejs_heap_size_total_bytes',
  'nodejs_heap_size_used_bytes',
  'nodejs_external_memory_bytes',
  'nodejs_heap_space_size_total_bytes',
  'nodejs_heap_space_size_used_bytes',
  'nodejs_heap_space_size_available_bytes',
  'nodejs_eventloop_lag_seconds',
  ...['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'].map((stat) => `nodejs_eventloop_lag_${stat}_seconds`),
  'nodejs_version_info',
];
const LINUX_NAMES = ['process_open_fds', 'process_max_fds', 'process_virtual_memory_bytes', 'process_heap_bytes'];

test('the process and Node.js metrics, prefixed, with values that agree with the process', async () => {
  const registry = new Registry();
  registerProcessMetrics(registry, 'x_');
  await new Promise((resolve) => setTimeout(resolve, 30)); // the monitor's first intervals (it records from its second tick)
  const busyUntil = performance.now() + 100;
  while (performance.now() < busyUntil); // CPU time and event-loop delay to see
  await new Promise((resolve) => setTimeout(resolve, 30));
  const scrape = parseExposition(await registry.metrics());
  const linux = existsSync('/proc/self/status');
  for (const name of [...NAMES, ...(linux ? LINUX_NAMES : [])]) assert.ok(scrape.types.has(`x_${name}`), `declares x_${name}`);
  const value = (name: string): number => sumSamples(scrape, `x_${name}`);

  assert.equal(scrape.types.get('x_process_cpu_seconds_total'), 'counter');
  assert.ok(value('process_cpu_user_seconds_total') + value('process_cpu_system_seconds_total') >= 0.1);
  assert.ok(Math.abs(value('process_cpu_seconds_total') - value('process_cpu_user_seconds_total') - value('process_cpu_system_seconds_total')) < 1e-9);
  assert.ok(Math.abs(value('process_start_time_seconds') - (Date.now() / 1000 - process.uptime())) < 1);
  assert.ok(value('process_resident_memory_bytes') > 10 * 1024 * 1024);
  assert.ok(value('nodejs_heap_size_used_bytes') > 0 && value('nodejs_heap_size_used_bytes') <= value('nodejs_heap_size_total_bytes'));
  assert.ok(value('nodejs_external_memory_bytes') > 0);
  const oldSpace = { space: 'old' };
  assert.ok(sumSamples(scrape, 'x_nodejs_heap_space_size_used_bytes', oldSpace) > 0);
  assert.ok(sumSamples(scrape, 'x_nodejs_heap_space_size_used_bytes', oldSpace) <= sumSamples(scrape, 'x_nodejs_heap_space_size_total_bytes', oldSpace));
  assert.ok(value('nodejs_heap_space_size_total_bytes') <= value('nodejs_heap_size_total_bytes'), 'the spaces make up the heap');
  assert.ok(value('nodejs_eventloop_lag_seconds') > 0);
  // The monitor records each interval of its 10 ms timer, so the busy loop shows as one of 100 ms or more.
  assert.ok(value('nodejs_eventloop_lag_max_seconds') >= 0.1, `the busy loop was seen by the delay monitor: ${value('nodejs_eventloop_lag_max_seconds')}`);
  assert.ok(value('nodejs_eventloop_lag_min_seconds') <= value('nodejs_eventloop_lag_p50_seconds'));
  assert.ok(value('nodejs_eventloop_lag_p50_seconds') <= value('nodejs_eventloop_lag_p99_seconds'));
  const [major, minor, patch] = process.versions.node.split('.');
  assert.equal(sumSamples(scrape, 'x_nodejs_version_info', { version: process.version, major, minor, patch } as Record<string, string>), 1);
  if (linux) {
    assert.ok(value('process_open_fds') > 0);
    assert.ok(value('process_max_fds') >= value('process_open_fds'));
    assert.ok(value('process_virtual_memory_bytes') >= value('process_resident_memory_bytes'));
  }

  // The delay monitor starts over at each scrape: the busy loop is gone from the next one.
  await new Promise((resolve) => setTimeout(resolve, 50));
  const next = parseExposition(await registry.metrics());
  assert.ok(sumSamples(next, 'x_nodejs_eventloop_lag_max_seconds') < 0.1, 'reset after the scrape');
});

test('the /proc parsers: status in kB, the soft limit of open files', () => {
  const status = 'Name:\tnode\nVmSize:\t  1048576 kB\nVmRSS:\t   65536 kB\nVmData:\t  204800 kB\n';
  assert.equal(procStatusBytes(status, 'VmSize'), 1024 ** 3);
  assert.equal(procStatusBytes(status, 'VmData'), 204800 * 1024);
  assert.equal(procStatusBytes(status, 'VmSwap'), undefined);
  const limits = [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max open files            1024                 1048576              files     ',
    'Max locked memory         unlimited            unlimited            bytes     ',
  ].join('\n');
  assert.equal(maxOpenFiles(limits), 1024);
  assert.equal(maxOpenFiles(limits.replace('1024   ', 'unlimited')), Infinity);
  assert.equal(maxOpenFiles('Limit Soft Limit\n'), undefined);
});
