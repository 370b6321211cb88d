// fast-check arbitraries for fuzzing the registry: request targets (spec
// names, tags and digests, their mutations, traversal in every encoding,
// overlong paths), methods, and the values of the headers the agent reads
// (Range, If-None-Match, If-Range, x-mirra-peer, Accept, Host).
import fc from 'fast-check';
import { FOREIGN_CHARS, invalidDigestArb, invalidNameArb, invalidTagArb, validDigestArb, validNameArb, validTagArb } from './oci-arbitraries.ts';

/** Characters a request target may hold unencoded (RFC 3986 pchar, without `%`). */
const PCHAR = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]$/;

function percentEncode(char: string, upperHex: boolean): string {
  return [...Buffer.from(char, 'utf8')]
    .map((byte) => {
      const hex = byte.toString(16).padStart(2, '0');
      return `%${upperHex ? hex.toUpperCase() : hex}`;
    })
    .join('');
}

/** How a decoded segment is written in the target: which characters are percent-encoded though they need not be. */
export interface SegmentEncoding {
  /** 0: only what must be encoded; 1: everything. */
  rate: number;
  upperHex: boolean;
  seed: number;
}

export const segmentEncodingArb: fc.Arbitrary<SegmentEncoding> = fc.record({
  rate: fc.constantFrom(0, 0, 0, 0.3, 1),
  upperHex: fc.boolean(),
  seed: fc.integer(),
});

/** Encodes one decoded path segment; `/`, `%`, `?`, `#` and non-pchar characters always are. */
export function encodeSegment(decoded: string, encoding: SegmentEncoding): string {
  let state = encoding.seed | 0;
  const next = (): number => {
    state = (Math.imul(state, 1103515245) + 12345) | 0;
    return ((state >>> 8) & 0xffff) / 0x10000;
  };
  let out = '';
  for (const char of decoded) {
    const must = !PCHAR.test(char);
    out += must || next() < encoding.rate ? percentEncode(char, encoding.upperHex) : char;
  }
  return out;
}

/** Known content of the fixture, so that some generated requests hit it. */
export interface KnownContent {
  digests: readonly string[];
  /** `[name, tag]` pairs that resolve (on the default registry). */
  tags: ReadonlyArray<readonly [string, string]>;
}

export interface TargetParts {
  names: string[];
  endpoint: string;
  reference: string;
  query: string;
  encoding: SegmentEncoding;
}

export function buildTarget(parts: TargetParts): string {
  const segments = [...parts.names, parts.endpoint, parts.reference].map((segment) => encodeSegment(segment, parts.encoding));
  return `/v2/${segments.join('/')}${parts.query}`;
}

const queryArb = fc.oneof(
  { arbitrary: fc.constant(''), weight: 6 },
  { arbitrary: fc.constantFrom('?ns=docker.io', '?ns=DOCKER.IO', '?ns=ghcr.io', '?ns=unmirrored.example:5000', '?x=1&ns=docker.io', '?ns='), weight: 2 },
  {
    arbitrary: fc.constantFrom('?ns=a/b', '?ns=%zz', '?ns=..', '?ns=%2e%2e%2fetc', '?ns=-bad', '?ns=' + 'a'.repeat(300), '?ns=docker.io&ns=ghcr.io', '?'),
    weight: 1,
  },
);

/** Names as path segments: a valid or invalid name split at `/`, sometimes with a `/` kept inside a segment (encoded). */
function nameSegmentsArb(): fc.Arbitrary<string[]> {
  const split = fc.oneof({ arbitrary: validNameArb(), weight: 3 }, { arbitrary: invalidNameArb(), weight: 2 }).map((name) => name.split('/'));
  const merged = fc.tuple(validNameArb(), fc.nat()).map(([name, at]) => {
    const parts = name.split('/');
    if (parts.length < 2) return [`${name}/x`];
    const i = at % (parts.length - 1);
    return [...parts.slice(0, i), `${parts[i]}/${parts[i + 1]}`, ...parts.slice(i + 2)];
  });
  return fc.oneof({ arbitrary: split, weight: 8 }, { arbitrary: merged, weight: 1 }, { arbitrary: fc.constant<string[]>([]), weight: 1 });
}

function referenceArb(known: KnownContent): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.constantFrom(...known.digests), weight: 3 },
    { arbitrary: validDigestArb(), weight: 2 },
    { arbitrary: invalidDigestArb(), weight: 3 },
    { arbitrary: validTagArb(), weight: 2 },
    { arbitrary: invalidTagArb(), weight: 2 },
  );
}

/** Targets built from the grammar: known content, valid and invalid names, tags and digests, random encodings. */
export function structuredTargetArb(known: KnownContent): fc.Arbitrary<string> {
  const tags = known.tags.length > 0 ? known.tags : [['library/none', 'latest'] as const];
  const knownTag = fc
    .tuple(fc.constantFrom(...tags), segmentEncodingArb)
    .map(([[name, tag], encoding]) => buildTarget({ names: name.split('/'), endpoint: 'manifests', reference: tag, query: '', encoding }));
  const built = fc
    .record({
      names: nameSegmentsArb(),
      endpoint: fc.constantFrom('blobs', 'blobs', 'manifests', 'manifests', 'tags', 'referrers', 'blobs/uploads', ''),
      reference: referenceArb(known),
      query: queryArb,
      encoding: segmentEncodingArb,
    })
    .map(buildTarget);
  return fc.oneof({ arbitrary: built, weight: 8 }, { arbitrary: knownTag, weight: 1 });
}

/** Pieces of traversal attempts, raw and in every encoding (double, overlong UTF-8, backslashes, NUL). */
export const TRAVERSAL_ATOMS = [
  '..',
  '.',
  '/',
  '//',
  '\\',
  '%2e',
  '%2E',
  '%2e%2e',
  '%2E%2e',
  '.%2e',
  '%2e.',
  '%2f',
  '%2F',
  '%5c',
  '%5C',
  '%00',
  '%252e%252e',
  '%252f',
  '%c0%ae',
  '%c0%af',
  '%e0%80%ae',
  '%c1%9c',
  '%ff',
  '%fe%ff',
  '%',
  '%%',
  '%zz',
  '%2',
  '%u002e',
  ';',
  '..;',
  '%3b',
  '%3a',
  ':',
  '?',
  '#',
  '%23',
  '%3f',
  '@',
  '~',
  '*',
  'etc',
  'passwd',
  '/etc/passwd',
  'blobs',
  'manifests',
  'sha256:',
  'secret',
  'a',
  'library',
  'nginx',
  'latest',
  '%C3%A9',
  'é',
  '\u2215',
  '%e2%88%95',
  '%ef%bc%8f',
  '%09',
  '%0d%0a',
  '%20',
  '+',
];

/** Free-form targets made of traversal atoms after a prefix that looks (or almost looks) like the API root. */
export function traversalTargetArb(known: KnownContent): fc.Arbitrary<string> {
  const prefix = fc.constantFrom(
    '/v2/',
    '/v2/',
    '/v2/',
    '/v2',
    '/',
    '//v2/',
    '/V2/',
    '/v2//',
    '/./v2/',
    '/v2/../v2/',
    '/%76%32/',
    '*',
    '',
    'http://127.0.0.1/v2/',
  );
  const atom = fc.oneof(
    { arbitrary: fc.constantFrom(...TRAVERSAL_ATOMS), weight: 8 },
    { arbitrary: fc.constantFrom(...known.digests), weight: 1 },
    { arbitrary: fc.constantFrom('/blobs/', '/manifests/'), weight: 2 },
  );
  return fc.tuple(prefix, fc.array(atom, { maxLength: 16 }), queryArb).map(([p, atoms, q]) => p + atoms.join('') + q);
}

/** Paths far over every limit: 8 KiB (under Node's 16 KiB header limit) and 20 to 70 KiB (over it). */
export function overlongTargetArb(known: KnownContent): fc.Arbitrary<string> {
  return fc
    .tuple(
      fc.constantFrom(8 * 1024, 12 * 1024, 20 * 1024, 64 * 1024, 70 * 1024),
      fc.constantFrom('a/', '../', '%2e%2e/', 'a', '%41'),
      fc.constantFrom(...known.digests),
      fc.constantFrom('blobs', 'manifests'),
    )
    .map(([lengthChars, unit, digest, endpoint]) => `/v2/${unit.repeat(Math.ceil(lengthChars / unit.length))}/${endpoint}/${digest}`);
}

/** Arbitrary strings after /v2/: any code unit (written as UTF-8), including lone surrogates and controls. */
export function randomTargetArb(): fc.Arbitrary<string> {
  return fc
    .string({ unit: fc.oneof(fc.constantFrom('/', '%', '.', ':', 'a', 'b', '2'), fc.constantFrom(...FOREIGN_CHARS)), maxLength: 60 })
    .map((rest) => `/v2/${rest}`);
}

export function anyTargetArb(known: KnownContent): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: structuredTargetArb(known), weight: 6 },
    { arbitrary: traversalTargetArb(known), weight: 4 },
    { arbitrary: randomTargetArb(), weight: 1 },
    { arbitrary: overlongTargetArb(known), weight: 1 },
  );
}

/** Methods: GET and HEAD, the other standard ones, WebDAV and friends, CONNECT, lower case, and tokens no parser knows. */
export function methodArb(): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.constantFrom('GET', 'HEAD'), weight: 4 },
    {
      arbitrary: fc.constantFrom(
        'POST',
        'PUT',
        'DELETE',
        'PATCH',
        'OPTIONS',
        'TRACE',
        'PROPFIND',
        'PROPPATCH',
        'MKCOL',
        'COPY',
        'MOVE',
        'LOCK',
        'UNLOCK',
        'SEARCH',
        'REPORT',
        'PURGE',
        'QUERY',
        'LINK',
        'UNLINK',
        'SOURCE',
        'BIND',
        'ACL',
        'NOTIFY',
        'SUBSCRIBE',
        'M-SEARCH',
        'MERGE',
        'CHECKOUT',
        'MKACTIVITY',
        'CONNECT',
      ),
      weight: 3,
    },
    { arbitrary: fc.constantFrom('get', 'head', 'Get', 'GETT', 'GE', 'FOO', 'X-GET', 'BREW', 'HEADX'), weight: 2 },
    { arbitrary: fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZ-_'), minLength: 1, maxLength: 12 }), weight: 1 },
  );
}

/** Field-value characters Node's parser takes (VCHAR, SP, HTAB, obs-text), written as latin1 on the wire. */
const FIELD_CHARS = fc.oneof(
  { arbitrary: fc.integer({ min: 0x21, max: 0x7e }).map((code) => String.fromCharCode(code)), weight: 8 },
  { arbitrary: fc.constantFrom(' ', '\t'), weight: 1 },
  { arbitrary: fc.integer({ min: 0x80, max: 0xff }).map((code) => String.fromCharCode(code)), weight: 1 },
);

export function headerValueArb(maxLength = 80): fc.Arbitrary<string> {
  return fc.string({ unit: FIELD_CHARS, maxLength }).map((value) => value.trim());
}

/** A Range header and, when it is one satisfiable single range, the bytes it selects of a blob of `sizeBytes`. */
export interface RangeCase {
  header: string;
  kind: 'partial' | 'unsatisfiable' | 'full' | 'any';
  start?: number;
  end?: number;
}

const HUGE = ['99999999999999999999', '18446744073709551616', '9007199254740993', '1e3', '0x10', '\u00b2'];

export function rangeCaseArb(sizeBytes: number): fc.Arbitrary<RangeCase> {
  const offset = fc.integer({ min: 0, max: sizeBytes + 5 });
  const ws = fc.constantFrom('', '', ' ', '\t', '  ');
  const unit = fc.constantFrom('bytes', 'bytes', 'Bytes', 'BYTES');
  const single = fc.tuple(unit, ws, offset, offset, ws).map(([u, w, a, b, w2]): RangeCase => {
    const header = `${u}${w}=${w2}${a}-${b}`;
    if (b < a) return { header, kind: 'unsatisfiable' };
    if (a >= sizeBytes) return { header, kind: 'unsatisfiable' };
    return { header, kind: 'partial', start: a, end: Math.min(b, sizeBytes - 1) };
  });
  const open = fc
    .tuple(unit, offset)
    .map(([u, a]): RangeCase =>
      a >= sizeBytes ? { header: `${u}=${a}-`, kind: 'unsatisfiable' } : { header: `${u}=${a}-`, kind: 'partial', start: a, end: sizeBytes - 1 },
    );
  const suffix = fc
    .tuple(unit, offset)
    .map(([u, n]): RangeCase =>
      n === 0 || sizeBytes === 0
        ? { header: `${u}=-${n}`, kind: 'unsatisfiable' }
        : { header: `${u}=-${n}`, kind: 'partial', start: Math.max(0, sizeBytes - n), end: sizeBytes - 1 },
    );
  const huge = fc.tuple(fc.constantFrom(...HUGE), fc.constantFrom('first', 'last', 'suffix')).map(([n, where]): RangeCase => {
    const digitsOnly = /^\d+$/.test(n);
    if (!digitsOnly) return { header: where === 'suffix' ? `bytes=-${n}` : `bytes=${n}-`, kind: 'full' };
    if (where === 'first') return { header: `bytes=${n}-`, kind: 'unsatisfiable' };
    if (where === 'last') return { header: `bytes=0-${n}`, kind: sizeBytes === 0 ? 'unsatisfiable' : 'partial', start: 0, end: sizeBytes - 1 };
    return { header: `bytes=-${n}`, kind: sizeBytes === 0 ? 'unsatisfiable' : 'partial', start: 0, end: sizeBytes - 1 };
  });
  const multi = fc
    .array(fc.tuple(offset, offset), { minLength: 2, maxLength: 5 })
    .map((ranges): RangeCase => ({ header: `bytes=${ranges.map(([a, b]) => `${a}-${b}`).join(',')}`, kind: 'full' }));
  const ignored = fc
    .constantFrom(
      'bytes=-',
      'bytes=',
      'bytes',
      'bytes=--1',
      'bytes=-5-3',
      'bytes=1--2',
      'bytes=a-b',
      'bytes=0-1;',
      'bytes=0-1,',
      'items=0-1',
      'none',
      'bytes:0-1',
      'bytes 0-1',
      '=0-1',
      'bytes=+1-2',
      'bytes=1-+2',
      'bytes=0-1 2',
      'bytes=0x1-2',
      'bytes=1.5-2',
      '',
    )
    .map((header): RangeCase => ({ header, kind: 'full' }));
  const random = headerValueArb(40).map((header): RangeCase => ({ header, kind: 'any' }));
  return fc.oneof(single, open, suffix, huge, multi, ignored, random);
}
