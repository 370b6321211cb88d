import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Candidate } from './client.ts';
import { createHedgeDelay } from './hedge.ts';
import { raceCandidates } from './race.ts';

const peers: Candidate[] = ['a', 'b', 'c', 'd'].map((name) => ({ name, url: `http://${name}` }));
const fixed = (ms: number) => ({ delayMs: () => ms, observe: () => {} });

/** An attempt that settles after `ms` (or on abort, rejecting), with a result per peer name. */
function scripted(plan: Record<string, { ms: number; value?: string; fail?: boolean }>) {
  const started: string[] = [];
  const aborted: string[] = [];
  const attempt = (candidate: Candidate, signal: AbortSignal): Promise<string | undefined> => {
    started.push(candidate.name);
    const step = plan[candidate.name] ?? { ms: 0 };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => (step.fail === true ? reject(new Error('boom')) : resolve(step.value)), step.ms);
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        aborted.push(candidate.name);
        reject(new Error('aborted'));
      });
    });
  };
  return { attempt, started, aborted };
}

test('the hedge delay follows the p90 of recent latencies, clamped', () => {
  const hedge = createHedgeDelay({ minDelayMs: 20, maxDelayMs: 500, initialDelayMs: 100, windowSize: 10 });
  assert.equal(hedge.delayMs(), 100);
  for (let i = 1; i <= 10; i++) hedge.observe(i * 10);
  assert.equal(hedge.delayMs(), 90);
  for (let i = 0; i < 10; i++) hedge.observe(1);
  assert.equal(hedge.delayMs(), 20, 'clamped to the minimum');
  for (let i = 0; i < 10; i++) hedge.observe(5000);
  assert.equal(hedge.delayMs(), 500, 'clamped to the maximum');
  hedge.observe(Number.NaN);
  hedge.observe(-1);
  assert.equal(hedge.delayMs(), 500, 'nonsense samples are ignored');
});

test('the first hit wins; a miss or a failure moves on at once', async () => {
  const { attempt, started } = scripted({ a: { ms: 1 }, b: { ms: 1, fail: true }, c: { ms: 1, value: 'C' } });
  const failures: string[] = [];
  const winner = await raceCandidates({ candidates: peers, attempt, dispose: () => {}, hedge: fixed(1000), onFailure: (c) => failures.push(c.name) });
  assert.equal(winner?.value, 'C');
  assert.equal(winner?.candidate.name, 'c');
  assert.deepEqual(
    winner?.rest.map((c) => c.name),
    ['d'],
    'a missed, b failed: neither is kept to resume from',
  );
  assert.deepEqual(started, ['a', 'b', 'c']);
  assert.deepEqual(failures, ['b']);
});

test('a slow candidate is hedged, the loser aborted, and kept to resume from', async () => {
  const { attempt, started, aborted } = scripted({ a: { ms: 1000, value: 'A' }, b: { ms: 5, value: 'B' } });
  let hedges = 0;
  const startedMs = performance.now();
  const winner = await raceCandidates({ candidates: peers, attempt, dispose: () => {}, hedge: fixed(20), onHedge: () => hedges++ });
  assert.ok(performance.now() - startedMs < 200);
  assert.equal(winner?.value, 'B');
  assert.deepEqual(
    winner?.rest.map((c) => c.name),
    ['a', 'c', 'd'],
  );
  assert.deepEqual(started, ['a', 'b']);
  assert.deepEqual(aborted, ['a']);
  assert.equal(hedges, 1);
});

test('a hit that comes in after the race was decided is disposed of', async () => {
  const disposed: string[] = [];
  // b wins while a's attempt ignores the abort and still delivers a hit.
  const attempt = (candidate: Candidate): Promise<string | undefined> =>
    new Promise((resolve) => setTimeout(() => resolve(candidate.name.toUpperCase()), candidate.name === 'a' ? 60 : 5));
  const winner = await raceCandidates({ candidates: peers.slice(0, 2), attempt, dispose: (v) => disposed.push(v), hedge: fixed(10) });
  assert.equal(winner?.value, 'B');
  await new Promise((resolve) => setTimeout(resolve, 80));
  assert.deepEqual(disposed, ['A']);
});

test('nobody has it, no candidates, or aborted: undefined', async () => {
  const { attempt } = scripted({});
  assert.equal(await raceCandidates({ candidates: peers, attempt, dispose: () => {}, hedge: fixed(5) }), undefined);
  assert.equal(await raceCandidates({ candidates: [], attempt, dispose: () => {}, hedge: fixed(5) }), undefined);
  const slow = scripted({ a: { ms: 1000, value: 'A' } });
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 10);
  assert.equal(
    await raceCandidates({ candidates: peers.slice(0, 1), attempt: slow.attempt, dispose: () => {}, hedge: fixed(500), signal: controller.signal }),
    undefined,
  );
  assert.deepEqual(slow.aborted, ['a']);
});
