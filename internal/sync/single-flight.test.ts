import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSingleFlight } from './single-flight.ts';

test('concurrent calls for a key share one run; other keys and later calls run anew', async () => {
  const flight = createSingleFlight<string>();
  let runs = 0;
  let release: (value: string) => void = () => {};
  const work = (): Promise<string> => {
    runs++;
    return new Promise((resolve) => (release = resolve));
  };
  const a = flight.run('k', work);
  const b = flight.run('k', work);
  const other = flight.run('j', async () => 'j');
  assert.equal(runs, 1);
  assert.equal(flight.inFlight(), 2);
  release('v');
  assert.deepEqual(await Promise.all([a, b, other]), ['v', 'v', 'j']);
  assert.equal(flight.inFlight(), 0);
  const c = flight.run('k', work);
  assert.equal(runs, 2, 'settled: the next call runs the work again');
  release('w');
  assert.equal(await c, 'w');
});

test('a failure reaches every caller of that run, and frees the key', async () => {
  const flight = createSingleFlight<number>();
  let fail: (err: Error) => void = () => {};
  const work = (): Promise<number> => new Promise((_resolve, reject) => (fail = reject));
  const calls = [flight.run('k', work), flight.run('k', work)];
  fail(new Error('gone'));
  for (const call of calls) await assert.rejects(call, /gone/);
  assert.equal(flight.inFlight(), 0);
  assert.equal(await flight.run('k', async () => 7), 7);
});
