// The agent's load-shedding settings: 'auto' memory thresholds, and the
// liveness probe that is never shed.
import assert from 'node:assert/strict';
import { totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { getHeapStatistics } from 'node:v8';
import { autoMemoryThresholds, DEFAULT_PRESSURE, memoryTight, resolvePressure } from './pressure.ts';
import { createTestApp } from '../../tests/support/registry/testkit.ts';

test("'auto' follows V8's heap limit and the container's memory limit", () => {
  const auto = autoMemoryThresholds();
  assert.equal(auto.maxHeapUsedBytes, Math.floor(getHeapStatistics().heap_size_limit * 0.9));
  const constrained = process.constrainedMemory();
  if (constrained > 0 && constrained < totalmem()) assert.equal(auto.maxRssBytes, Math.floor(constrained * 0.94));
  else assert.equal(auto.maxRssBytes, 0, 'no RSS threshold without a memory limit');
  const resolved = resolvePressure({ maxEventLoopDelayMs: 150, maxEventLoopUtilization: 0.5, maxHeapUsedBytes: 'auto', maxRssBytes: 123 });
  assert.deepEqual(resolved, {
    ...DEFAULT_PRESSURE,
    maxEventLoopDelayMs: 150,
    maxEventLoopUtilization: 0.5,
    maxHeapUsedBytes: auto.maxHeapUsedBytes,
    maxRssBytes: 123,
  });
});

test('memory sheds only while RSS is over the threshold and live memory over half of it (RSS kept by the allocator alone does not)', () => {
  const MiB = 1024 * 1024;
  const usage = (rss: number, heapUsed: number, external: number): NodeJS.MemoryUsage => ({
    rss: rss * MiB,
    heapUsed: heapUsed * MiB,
    external: external * MiB,
    heapTotal: heapUsed * MiB,
    arrayBuffers: 0,
  });
  const max = 240 * MiB;
  assert.equal(memoryTight(max, usage(250, 90, 40)), true, 'over, and 130 MiB live');
  assert.equal(memoryTight(max, usage(284, 61, 20)), false, 'over, but only 81 MiB live: retained by the allocator');
  assert.equal(memoryTight(max, usage(230, 150, 50)), false, 'under');
});

test('under pressure, /healthz still answers 200 while the rest gets 503', async (t) => {
  const { app } = createTestApp({
    underPressure: { maxEventLoopDelayMs: 0, maxHeapUsedBytes: 0, maxRssBytes: 1, retryAfterSeconds: 1, sampleIntervalMs: 10 },
  });
  t.after(() => app.close());
  await app.ready();
  await sleep(50);
  assert.equal((await app.inject({ url: '/v2/' })).statusCode, 503);
  assert.equal((await app.inject({ url: '/readyz' })).statusCode, 503);
  const live = await app.inject({ url: '/healthz' });
  assert.equal(live.statusCode, 200);
  assert.equal(live.body, 'ok\n');
});
