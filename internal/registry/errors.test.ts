import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ERROR_TABLE, errorBody, RegistryError, toOciError } from './errors.ts';

test('the table has the spec statuses', () => {
  const expected: Record<string, number> = {
    BLOB_UNKNOWN: 404,
    MANIFEST_UNKNOWN: 404,
    NAME_INVALID: 400,
    NAME_UNKNOWN: 404,
    DIGEST_INVALID: 400,
    TAG_INVALID: 400,
    UNSUPPORTED: 405,
    UNAVAILABLE: 503,
    TOOMANYREQUESTS: 429,
    RANGE_INVALID: 416,
    UNKNOWN: 500,
  };
  for (const [code, status] of Object.entries(expected)) {
    assert.equal(ERROR_TABLE[code as keyof typeof ERROR_TABLE].status, status, code);
  }
});

test('RegistryError maps to its table entry with detail and headers', () => {
  const response = toOciError(new RegistryError('RANGE_INVALID', { size: 3 }, { 'content-range': 'bytes */3' }));
  assert.equal(response.status, 416);
  assert.deepEqual(response.body, { errors: [{ code: 'RANGE_INVALID', message: ERROR_TABLE.RANGE_INVALID.message, detail: { size: 3 } }] });
  assert.deepEqual(response.headers, { 'content-range': 'bytes */3' });
  assert.equal(response.internal, false);
  assert.equal(toOciError(new RegistryError('BLOB_UNKNOWN')).body.errors[0]?.detail, null);
});

test('load shed on purpose (503 UNAVAILABLE) is not a failure worth a warn line; other 5xx are', () => {
  assert.equal(toOciError(new RegistryError('UNAVAILABLE', { reason: 'too many requests in progress' })).internal, false);
  assert.equal(toOciError(new RegistryError('UNKNOWN')).internal, true);
});

test('framework errors map by status and code', () => {
  assert.equal(toOciError({ statusCode: 404, code: 'FST_ERR_NOT_FOUND' }).body.errors[0]?.code, 'NAME_UNKNOWN');
  assert.equal(toOciError({ statusCode: 400, code: 'FST_ERR_BAD_URL' }).body.errors[0]?.code, 'NAME_INVALID');
  assert.equal(toOciError({ statusCode: 503, code: 'FST_UNDER_PRESSURE' }).body.errors[0]?.code, 'UNAVAILABLE');
  assert.equal(toOciError({ statusCode: 405 }).body.errors[0]?.code, 'UNSUPPORTED');
  assert.equal(toOciError({ statusCode: 429 }).body.errors[0]?.code, 'TOOMANYREQUESTS');
  const tooLarge = toOciError({ statusCode: 413, code: 'FST_ERR_CTP_BODY_TOO_LARGE' });
  assert.equal(tooLarge.status, 413);
  assert.equal(tooLarge.body.errors[0]?.code, 'UNSUPPORTED');
});

test('anything else is 500 UNKNOWN without internals', () => {
  const response = toOciError(new Error('secret path /var/lib/x'));
  assert.equal(response.status, 500);
  assert.equal(response.internal, true);
  assert.deepEqual(response.body, errorBody('UNKNOWN'));
  assert.equal(toOciError('a string').status, 500);
  assert.equal(toOciError(null).status, 500);
});
