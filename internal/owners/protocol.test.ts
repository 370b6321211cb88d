// The index's wire format (protocol.ts) against independent oracles: push
// entries survive encodeEntries -> decodeEntries whatever their keys (any
// integer below 2^53), keys are packed as 7 big-endian bytes each (checked
// against a BigInt packing), and every malformed body a peer could send is
// refused with an IndexProtocolError whose message names the bad field (the
// route turns that message into the answer's detail). Key hex and the two
// answer parsers are checked the same way: round trip, and refusal of
// everything that is not what the other end sends.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { digestOf } from '../routing/owner-store.ts';
import {
  decodeEntries,
  encodeEntries,
  IndexProtocolError,
  keyHex,
  MAX_HOLDERS_ANSWERED,
  OWNER_SHARDS,
  packKeys,
  parseHoldersAnswer,
  parseKeyHex,
  parsePushAnswer,
  type IndexEntry,
} from './protocol.ts';

const RUNS = { numRuns: 500, seed: 7041 };
const MAX_KEY = 2 ** 53 - 1;

/** The oracle's packing: each key as 7 big-endian bytes, via BigInt, then base64. */
function oraclePack(keys: readonly number[]): string {
  const bytes = Buffer.alloc(keys.length * 7);
  keys.forEach((key, i) => {
    let value = BigInt(key);
    for (let b = 6; b >= 0; b--) {
      bytes[i * 7 + b] = Number(value & 0xffn);
      value >>= 8n;
    }
  });
  return bytes.toString('base64');
}

/** Keys, with the edges (0, 2^32 - 1, 2^32, 2^53 - 1) likely. */
const keyArb = fc.oneof(fc.maxSafeNat(), fc.constantFrom(0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 48, MAX_KEY));
const keysArb = fc.array(keyArb, { maxLength: 30 });
const shardArb = fc.integer({ min: 0, max: OWNER_SHARDS - 1 });
/** Digests as the owner store writes them (and the `0-0` of nothing). */
const digestArb = fc.oneof(
  fc.constant('0-0'),
  fc.uniqueArray(fc.maxSafeNat(), { minLength: 1, maxLength: 10 }).map((keys) => digestOf(new Set(keys))),
  fc.tuple(fc.integer({ min: 1, max: 9_999_999_999 }), fc.stringMatching(/^[0-9a-f]{16}$/)).map(([count, hex]) => `${count}-${hex}`),
);

/** Entries as plain objects (fast-check's records may have a null prototype; JSON.parse makes ordinary ones). */
const plain = { noNullPrototype: true } as const;
const entryArb: fc.Arbitrary<IndexEntry> = fc.oneof(
  fc.record({ shard: shardArb, op: fc.constant('full' as const), keys: keysArb, digest: digestArb }, plain),
  fc.record({ shard: shardArb, op: fc.constant('delta' as const), added: keysArb, removed: keysArb, digest: digestArb }, plain),
  fc.record({ shard: shardArb, op: fc.constant('check' as const), digest: digestArb }, plain),
);

/** A body with these entries as raw JSON values (what a peer might send). */
function body(...entries: unknown[]): Buffer {
  return Buffer.from(JSON.stringify({ entries }));
}

/** Asserts that `fn` throws an IndexProtocolError whose message matches `field`. */
function refuses(fn: () => unknown, field: RegExp, what: string): void {
  assert.throws(
    fn,
    (err: unknown) => {
      assert.ok(err instanceof IndexProtocolError, `${what}: ${String(err)}`);
      assert.match(err.message, field, what);
      return true;
    },
    what,
  );
}

const GOOD_DIGEST = digestOf(new Set([1, 2]));

describe('push entries on the wire', () => {
  it('encodeEntries -> decodeEntries gives the entries back, for any keys below 2^53', () => {
    fc.assert(
      fc.property(fc.array(entryArb, { maxLength: 12 }), (entries) => {
        assert.deepEqual(decodeEntries(encodeEntries(entries)), entries);
      }),
      RUNS,
    );
  });

  it('keys are packed as 7 big-endian bytes each (an independent BigInt packing), and the wire carries exactly that', () => {
    fc.assert(
      fc.property(keysArb, shardArb, (keys, shard) => {
        assert.equal(packKeys(keys, keys.length), oraclePack(keys));
        const wire: unknown = JSON.parse(encodeEntries([{ shard, op: 'full', keys, digest: '0-0' }]).toString('utf8'));
        assert.deepEqual(wire, { entries: [{ shard, op: 'full', keys: oraclePack(keys), digest: '0-0' }] });
        // A peer's body built with the oracle decodes to the same keys.
        assert.deepEqual(decodeEntries(body({ shard, op: 'delta', added: oraclePack(keys), removed: '', digest: '0-0' })), [
          { shard, op: 'delta', added: keys, removed: [], digest: '0-0' },
        ]);
      }),
      RUNS,
    );
  });

  it('packKeys refuses a count that is not the number of keys', () => {
    assert.throws(() => packKeys([1, 2, 3], 2), RangeError);
    assert.throws(() => packKeys([1, 2], 3), RangeError);
  });

  it('an empty entries array is no entries', () => {
    assert.deepEqual(decodeEntries(Buffer.from('{"entries":[]}')), []);
    assert.deepEqual(decodeEntries(encodeEntries([])), []);
  });

  it('a body that is not JSON, or has no entries array, is refused naming that', () => {
    for (const text of ['', 'not json', '{"entries":', '\u0000', '{"entries":[}'])
      refuses(() => decodeEntries(Buffer.from(text)), /not JSON/, JSON.stringify(text));
    for (const text of ['null', '[]', '42', '"entries"', '{}', '{"entries":{}}', '{"entries":"[]"}', '{"entries":null}', '{"Entries":[]}']) {
      refuses(() => decodeEntries(Buffer.from(text)), /no entries array/, text);
    }
  });

  it('an entry that is not an object is refused naming its index', () => {
    for (const entry of [null, 1, 'full', [], true])
      refuses(() => decodeEntries(body({ shard: 0, op: 'check', digest: '0-0' }, entry)), /entries\[1\]/, String(entry));
  });

  it('a shard that is not an integer in [0, 256) is refused naming entries[i].shard', () => {
    for (const shard of [-1, OWNER_SHARDS, OWNER_SHARDS + 1, 1.5, '3', null, undefined, 1e300, Number.MAX_SAFE_INTEGER]) {
      refuses(() => decodeEntries(body({ shard, op: 'check', digest: '0-0' })), /entries\[0\]\.shard/, String(shard));
    }
    assert.deepEqual(decodeEntries(body({ shard: OWNER_SHARDS - 1, op: 'check', digest: '0-0' })), [{ shard: OWNER_SHARDS - 1, op: 'check', digest: '0-0' }]);
  });

  it('a digest that is not <count>-<16 hex digits> (or 0-0) is refused naming entries[i].digest', () => {
    const bad = [
      '',
      '0',
      '0-',
      '0-1',
      '1-0',
      '01-0123456789abcdef',
      '0-0123456789abcdef',
      '1-0123456789ABCDEF',
      '1-0123456789abcde',
      '1-0123456789abcdef0',
      '12345678901-0123456789abcdef',
      '-1-0123456789abcdef',
      ' 1-0123456789abcdef',
      '1-0123456789abcdef\n',
      5,
      null,
    ];
    for (const digest of bad) {
      for (const entry of [
        { shard: 1, op: 'check', digest },
        { shard: 1, op: 'full', keys: '', digest },
        { shard: 1, op: 'delta', added: '', removed: '', digest },
      ]) {
        refuses(() => decodeEntries(body(entry)), /entries\[0\]\.digest/, `${entry.op} ${JSON.stringify(digest)}`);
      }
    }
    for (const digest of ['0-0', '1-0123456789abcdef', '9999999999-ffffffffffffffff', GOOD_DIGEST]) {
      assert.equal(decodeEntries(body({ shard: 1, op: 'check', digest }))[0]?.digest, digest);
    }
  });

  it('keys that are not whole 7-byte keys in canonical base64 are refused naming the field', () => {
    const seven = oraclePack([0x0102030405]); // 12 characters, one key
    const bad: unknown[] = [
      undefined,
      null,
      42,
      [],
      ['AAAAAAAAAA=='],
      'AAAAAA==', // 4 bytes: part of a key
      Buffer.alloc(8).toString('base64'), // 8 bytes: one key and a bit
      Buffer.alloc(13).toString('base64'), // 13 bytes
      seven.replace(/=+$/, ''), // unpadded
      `${seven} `, // trailing space
      ` ${seven}`,
      `${seven.slice(0, 4)}\n${seven.slice(4)}`, // a newline inside
      Buffer.alloc(7, 0xfb).toString('base64url'), // base64url, not base64
      '!!!!!!!!!!!!',
      `${seven}${seven}`, // two padded groups glued
    ];
    for (const value of bad) {
      refuses(() => decodeEntries(body({ shard: 2, op: 'full', keys: value, digest: '0-0' })), /entries\[0\]\.keys/, `keys ${JSON.stringify(value)}`);
      refuses(
        () => decodeEntries(body({ shard: 2, op: 'delta', added: value, removed: '', digest: '0-0' })),
        /entries\[0\]\.added/,
        `added ${JSON.stringify(value)}`,
      );
      refuses(
        () => decodeEntries(body({ shard: 2, op: 'delta', added: '', removed: value, digest: '0-0' })),
        /entries\[0\]\.removed/,
        `removed ${JSON.stringify(value)}`,
      );
    }
    assert.deepEqual(decodeEntries(body({ shard: 2, op: 'full', keys: seven, digest: '0-0' }))[0], {
      shard: 2,
      op: 'full',
      keys: [0x0102030405],
      digest: '0-0',
    });
  });

  it('a key with more than 53 bits is refused naming the field and the key', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 2n ** 53n, max: 2n ** 56n - 1n }), fc.array(fc.maxSafeNat(), { maxLength: 3 }), (wide, before) => {
        const bytes = Buffer.alloc(7);
        let value = wide;
        for (let b = 6; b >= 0; b--) {
          bytes[b] = Number(value & 0xffn);
          value >>= 8n;
        }
        const keys = Buffer.concat([Buffer.from(oraclePack(before), 'base64'), bytes]).toString('base64');
        refuses(
          () => decodeEntries(body({ shard: 0, op: 'full', keys, digest: '0-0' })),
          new RegExp(`entries\\[0\\]\\.keys: key ${before.length} has more than 53 bits`),
          wide.toString(16),
        );
      }),
      { numRuns: 200, seed: 7042 },
    );
  });

  it('an op that is not full, delta or check is refused naming entries[i].op', () => {
    for (const op of ['FULL', 'replace', '', null, undefined, 1, 'check ']) {
      refuses(() => decodeEntries(body({ shard: 0, op: 'check', digest: '0-0' }, { shard: 0, op, digest: '0-0', keys: '' })), /entries\[1\]\.op/, String(op));
    }
  });
});

describe('key hex (the holders path)', () => {
  it('keyHex -> parseKeyHex gives the key back, as 14 lower-case hex digits (the oracle: BigInt)', () => {
    fc.assert(
      fc.property(keyArb, (key) => {
        const hex = keyHex(key);
        assert.equal(hex, BigInt(key).toString(16).padStart(14, '0'));
        assert.match(hex, /^[0-9a-f]{14}$/);
        assert.equal(parseKeyHex(hex), key);
      }),
      RUNS,
    );
  });

  it('refuses anything but 14 lower-case hex digits of at most 53 bits', () => {
    const bad = [
      '',
      '0',
      '0000000000000', // 13
      '000000000000000', // 15
      '0000000000000G',
      '0000000000000A', // upper case
      ' 0000000000000',
      '0x000000000000',
      '-0000000000001',
      '+0000000000001',
      '20000000000000', // 2^53
      'ffffffffffffff',
      '00000000000000\n',
    ];
    for (const value of bad) refuses(() => parseKeyHex(value), /key/, JSON.stringify(value));
    assert.equal(parseKeyHex('1fffffffffffff'), MAX_KEY);
    assert.equal(parseKeyHex('00000000000000'), 0);
  });
});

describe('owner answers', () => {
  const INSTANCE = 'AbC-_0123456789xyz';

  it('a push answer is parsed back as sent', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/), fc.array(shardArb, { maxLength: 20 }), (instance, resend) => {
        assert.deepEqual(parsePushAnswer(JSON.parse(JSON.stringify({ instance, resend }))), { instance, resend });
      }),
      RUNS,
    );
  });

  it('a push answer without an object, a valid instance or a valid resend list is refused', () => {
    const bad: [unknown, RegExp][] = [
      [null, /not an object/],
      [[], /not an object/],
      ['x', /not an object/],
      [{ instance: INSTANCE }, /resend/],
      [{ instance: INSTANCE, resend: null }, /resend/],
      [{ instance: INSTANCE, resend: [-1] }, /resend/],
      [{ instance: INSTANCE, resend: [OWNER_SHARDS] }, /resend/],
      [{ instance: INSTANCE, resend: [1.5] }, /resend/],
      [{ instance: INSTANCE, resend: ['1'] }, /resend/],
      [{ resend: [] }, /instance/],
      [{ instance: '', resend: [] }, /instance/],
      [{ instance: 'a'.repeat(65), resend: [] }, /instance/],
      [{ instance: 'has space', resend: [] }, /instance/],
      [{ instance: 'a/b', resend: [] }, /instance/],
      [{ instance: 7, resend: [] }, /instance/],
    ];
    for (const [value, message] of bad) refuses(() => parsePushAnswer(value), message, JSON.stringify(value) ?? 'undefined');
  });

  it('a holders answer is parsed back as sent', () => {
    const podName = fc.stringMatching(/^[a-z0-9]([-a-z0-9.]{0,20}[a-z0-9])?$/);
    fc.assert(
      fc.property(fc.array(podName, { maxLength: MAX_HOLDERS_ANSWERED }), fc.boolean(), (holders, warming) => {
        const answer = { instance: INSTANCE, holders, warming };
        assert.deepEqual(parseHoldersAnswer(JSON.parse(JSON.stringify(answer))), answer);
      }),
      RUNS,
    );
  });

  it('a holders answer with more than 16 holders, a bad pod name, no warming flag or no valid instance is refused', () => {
    const many = Array.from({ length: MAX_HOLDERS_ANSWERED + 1 }, (_, i) => `pod-${i}`);
    const bad: [unknown, RegExp][] = [
      [null, /not an object/],
      [[INSTANCE], /not an object/],
      [{ instance: INSTANCE, warming: false }, /holders/],
      [{ instance: INSTANCE, holders: many, warming: false }, /holders/],
      [{ instance: INSTANCE, holders: ['Pod-A'], warming: false }, /holders/],
      [{ instance: INSTANCE, holders: ['pod_a'], warming: false }, /holders/],
      [{ instance: INSTANCE, holders: ['-pod'], warming: false }, /holders/],
      [{ instance: INSTANCE, holders: [''], warming: false }, /holders/],
      [{ instance: INSTANCE, holders: [7], warming: false }, /holders/],
      [{ instance: INSTANCE, holders: 'pod-a', warming: false }, /holders/],
      [{ instance: INSTANCE, holders: [] }, /warming/],
      [{ instance: INSTANCE, holders: [], warming: 'false' }, /warming/],
      [{ instance: INSTANCE, holders: [], warming: 0 }, /warming/],
      [{ holders: [], warming: false }, /instance/],
      [{ instance: '', holders: [], warming: false }, /instance/],
    ];
    for (const [value, message] of bad) refuses(() => parseHoldersAnswer(value), message, JSON.stringify(value) ?? 'undefined');
    assert.equal(parseHoldersAnswer({ instance: INSTANCE, holders: many.slice(0, MAX_HOLDERS_ANSWERED), warming: true }).holders.length, MAX_HOLDERS_ANSWERED);
  });
});
