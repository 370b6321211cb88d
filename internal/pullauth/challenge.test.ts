// The challenge parser against the formats registries send (distribution
// 2.8's exact strings, measured with tests/support/token-service.ts), the
// ways a header can be malformed, and a round trip: whatever Bearer challenge
// is formatted parses back to itself, including quotes and backslashes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bearerChallenge, formatBearerChallenge, parseChallenges, pullScope } from './challenge.ts';

describe('WWW-Authenticate challenges', () => {
  it("reads distribution's Bearer challenges, with and without an error", () => {
    assert.deepEqual(bearerChallenge('Bearer realm="http://127.0.0.1:5001/token",service="registry.test",scope="repository:team/app:pull"'), {
      realm: 'http://127.0.0.1:5001/token',
      service: 'registry.test',
      scope: 'repository:team/app:pull',
    });
    const withError = bearerChallenge('Bearer realm="https://auth.example.com/token",service="reg",scope="repository:a:pull",error="insufficient_scope"');
    assert.equal(withError?.scope, 'repository:a:pull');
    assert.deepEqual(bearerChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io"'), {
      realm: 'https://auth.docker.io/token',
      service: 'registry.docker.io',
      scope: undefined,
    });
  });

  it('takes the Bearer challenge among several, in one value or several, whatever the case and spacing', () => {
    const many = 'Basic realm="x", BEARER  Realm = "https://a.example/t" , Service=svc';
    assert.deepEqual(bearerChallenge(many), { realm: 'https://a.example/t', service: 'svc', scope: undefined });
    assert.equal(bearerChallenge(['Basic realm="registry"', 'Bearer realm="https://b.example/t"'])?.realm, 'https://b.example/t');
    assert.equal(parseChallenges(many).length, 2);
  });

  it('never takes a Basic challenge, a realm that is not an http(s) URL, or a malformed header', () => {
    for (const value of [
      'Basic realm="https://a.example/t"',
      'Bearer realm="ftp://a.example/t"',
      'Bearer realm="/token"',
      'Bearer realm="https://user:pw@a.example/t"',
      'Bearer service="only"',
      'Bearer realm="https://a.example/t',
      'Bearer realm="https://a.example/\x01"',
      'Bearer realm=',
      '=realm',
      `Bearer realm="https://a.example/${'x'.repeat(5000)}"`,
    ]) {
      assert.equal(bearerChallenge(value), undefined, value);
    }
    assert.equal(bearerChallenge(undefined), undefined);
    assert.equal(bearerChallenge([]), undefined);
  });

  it('formats a challenge that parses back to itself (quotes and backslashes escaped)', () => {
    const text = fc.string({ unit: fc.constantFrom('a', 'b', '"', '\\', ' ', ',', '=', ':', '/'), maxLength: 20 });
    fc.assert(
      fc.property(fc.record({ service: fc.option(text, { nil: undefined }), scope: fc.option(text, { nil: undefined }) }), ({ service, scope }) => {
        const challenge = { realm: 'https://auth.example.com/token?x=1', service, scope };
        assert.deepEqual(bearerChallenge(formatBearerChallenge(challenge)), challenge);
      }),
      { numRuns: 500, seed: 1501 },
    );
  });

  it('the pull scope of a repository', () => {
    assert.equal(pullScope('team/app'), 'repository:team/app:pull');
  });
});
