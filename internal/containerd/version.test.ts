// containerd's version strings as releases and distributions print them, read
// into major.minor for the agent's start-up check (version.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseContainerdVersion } from './version.ts';

test('release, source-build and Debian version strings give major.minor', () => {
  const cases: Array<[string, string, number, number]> = [
    ['v2.1.9', '2.1.9', 2, 1],
    ['2.1.9+unknown', '2.1.9', 2, 1],
    ['1.6.20~ds1', '1.6.20~ds1', 1, 6],
    ['1.7.24~ds1', '1.7.24~ds1', 1, 7],
    ['v2.2.0-rc.1', '2.2.0-rc.1', 2, 2],
    ['2.0', '2.0', 2, 0],
  ];
  for (const [raw, text, major, minor] of cases) assert.deepEqual(parseContainerdVersion(raw), { known: true, text, major, minor }, raw);
});

test('anything else is unknown, saying what containerd reported', () => {
  for (const raw of ['', 'abc', '2', 'v2.x.1', '2.1.9.1', 'containerd 2.1.9']) {
    const version = parseContainerdVersion(raw);
    assert.equal(version.known, false, raw);
    if (!version.known) assert.equal(version.reason, `containerd reported version ${JSON.stringify(raw)}`);
  }
});
