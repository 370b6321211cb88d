import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KubeApiError } from './client.ts';
import { backoffMs, describeError, isRetryable, retryAfterMs, statusOf } from './retry.ts';

test('backoff doubles from the minimum up to the cap, with jitter between half and all of it', () => {
  const options = { minBackoffMs: 100, maxBackoffMs: 1000 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 50].map((a) => backoffMs(a, options, () => 1)),
    [100, 200, 400, 800, 1000, 1000],
  );
  assert.deepEqual(
    [1, 2, 5].map((a) => backoffMs(a, options, () => 0)),
    [50, 100, 500],
  );
  for (let i = 0; i < 100; i++) {
    const ms = backoffMs(3, options);
    assert.ok(ms >= 200 && ms <= 400);
  }
});

test('which errors are retried, Retry-After and descriptions', () => {
  const status = (code: number, headers: Record<string, string> = {}) => new KubeApiError(code, headers, { kind: 'Status', message: `m${code}` });
  assert.deepEqual(
    [500, 503, 429, 409, 408, 404, 401].map((c) => isRetryable(status(c))),
    [true, true, true, true, true, true, true],
  );
  assert.deepEqual(
    [400, 403, 413, 415, 422].map((c) => isRetryable(status(c))),
    [false, false, false, false, false],
  );
  assert.equal(isRetryable(new Error('connect ECONNREFUSED 127.0.0.1:1')), true);
  assert.equal(statusOf(status(410)), 410);
  assert.equal(statusOf(new Error('Gone')), undefined);
  assert.equal(retryAfterMs(status(429, { 'retry-after': '2' })), 2000);
  assert.equal(retryAfterMs(status(429, { 'retry-after': 'Wed, 21 Oct 2015 07:28:00 GMT' })), undefined);
  assert.equal(retryAfterMs(status(429)), undefined);
  assert.equal(describeError(status(422)), 'HTTP 422: m422');
  assert.equal(describeError(new KubeApiError(502, {}, '<html>bad gateway')), 'HTTP 502');
  assert.equal(describeError(new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED') })), 'fetch failed: connect ECONNREFUSED');
});
