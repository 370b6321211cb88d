// fast-check arbitraries for the OCI distribution spec's grammars, for the
// property tests: repository names, tags and digests that follow the grammar,
// and mutations of them that are outside it by construction (each mutation
// breaks a rule of the grammar whatever the context, so the generated value is
// invalid without asking the code under test).
//
//   name      [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*, at most 255 chars
//   tag       [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
//   digest    sha256:[a-f0-9]{64} | sha512:[a-f0-9]{128} (the algorithms supported here)
import fc from 'fast-check';
import { MAX_NAME_LENGTH } from '../../../internal/oci/reference.ts';

const LOWER_ALNUM = [...'abcdefghijklmnopqrstuvwxyz0123456789'];
const TAG_FIRST = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_'];
const TAG_REST = [...TAG_FIRST, '.', '-'];
const HEX = [...'0123456789abcdef'];

/** Characters outside every grammar here, and lookalikes of the ones inside. */
export const FOREIGN_CHARS = [
  ' ',
  '\t',
  '\n',
  '\r',
  '\0',
  '\\',
  '%',
  '#',
  '?',
  '@',
  '!',
  '~',
  '+',
  '*',
  '"',
  "'",
  '<',
  '>',
  '|',
  '^',
  '`',
  '{',
  '}',
  '\u00e9',
  '\u00a0',
  '\u2024',
  '\u2025',
  '\u2215',
  '\uff0f',
  '\uff0e',
  '\u0660',
  '\u200b',
  '\ud83d\ude00',
  '\u0130',
];

function stringOf(chars: readonly string[], minLength: number, maxLength: number): fc.Arbitrary<string> {
  return fc.string({ unit: fc.constantFrom(...chars), minLength, maxLength });
}

export function nameComponentArb(maxRunChars = 8): fc.Arbitrary<string> {
  const run = stringOf(LOWER_ALNUM, 1, maxRunChars);
  const separator = fc.constantFrom('.', '_', '__', '-', '--', '---');
  return fc.tuple(run, fc.array(fc.tuple(separator, run), { maxLength: 3 })).map(([first, rest]) => first + rest.map(([sep, r]) => sep + r).join(''));
}

/** A repository name inside the grammar (1 to 5 components, at most 255 chars). */
export function validNameArb(): fc.Arbitrary<string> {
  const short = fc.array(nameComponentArb(), { minLength: 1, maxLength: 5 }).map((parts) => parts.join('/'));
  const long = fc.array(nameComponentArb(60), { minLength: 1, maxLength: 5 }).map((parts) => parts.join('/'));
  return fc.oneof({ arbitrary: short, weight: 4 }, { arbitrary: long, weight: 1 }).filter((name) => name.length <= MAX_NAME_LENGTH);
}

function insertAt(value: string, position: number, insert: string): string {
  const at = position % (value.length + 1);
  return value.slice(0, at) + insert + value.slice(at);
}

/** A valid name broken by one mutation that no context can repair. */
export function invalidNameArb(): fc.Arbitrary<string> {
  const position = fc.nat();
  return fc.oneof(
    // A character outside [a-z0-9._/-] anywhere (upper case included).
    fc
      .tuple(validNameArb(), position, fc.constantFrom(...FOREIGN_CHARS, 'A', 'Z', ':', ';', ',', '=', '&', '$'))
      .map(([name, at, char]) => insertAt(name, at, char)),
    // Separators that must be followed by [a-z0-9]: never two in a row (but `__`, `--`), never at an edge.
    fc
      .tuple(validNameArb(), position, fc.constantFrom('___', '._', '_.', '-.', '.-', '..', '-_', '_-', '/.', './', '/_', '-/', '//', '/-'))
      .map(([name, at, bad]) => insertAt(name, at, bad)),
    fc.tuple(validNameArb(), fc.constantFrom('/', '.', '_', '-', '..', '../', '/..', './')).map(([name, edge]) => edge + name),
    fc.tuple(validNameArb(), fc.constantFrom('/', '.', '_', '-', '/..', '/.', '/')).map(([name, edge]) => name + edge),
    // Dot components and traversal.
    fc.tuple(fc.array(validNameArb(), { minLength: 1, maxLength: 3 }), fc.constantFrom('.', '..', '...', ''), position).map(([parts, bad, at]) => {
      const copy = [...parts];
      copy.splice(at % (copy.length + 1), 0, bad);
      return copy.join('/');
    }),
    fc.constantFrom('', '.', '..', '/', '/etc/passwd', '../../etc/passwd', 'a/../../b', '..\\..\\windows', 'C:\\x', '\0'),
    // Too long, though every component is fine.
    fc.tuple(validNameArb(), fc.integer({ min: MAX_NAME_LENGTH, max: 4 * MAX_NAME_LENGTH })).map(([name, length]) => `${name}/${'a'.repeat(length)}`),
  );
}

export function validTagArb(): fc.Arbitrary<string> {
  return fc
    .tuple(fc.constantFrom(...TAG_FIRST), fc.oneof({ arbitrary: stringOf(TAG_REST, 0, 12), weight: 5 }, { arbitrary: stringOf(TAG_REST, 0, 127), weight: 1 }))
    .map(([first, rest]) => first + rest);
}

/** Outside the tag grammar; never contains `:` (that would make it a digest reference). */
export function invalidTagArb(): fc.Arbitrary<string> {
  return fc.oneof(
    fc.constant(''),
    fc.tuple(fc.constantFrom('.', '-'), stringOf(TAG_REST, 0, 10)).map(([first, rest]) => first + rest),
    fc
      .tuple(validTagArb(), fc.nat(), fc.constantFrom(...FOREIGN_CHARS, '/', ',', ';', '=', '&', '$', '(', ')'))
      .map(([tag, at, char]) => insertAt(tag, at, char)),
    fc.tuple(fc.constantFrom(...TAG_FIRST), stringOf(TAG_REST, 128, 300)).map(([first, rest]) => first + rest),
    fc.constantFrom('..', '.', '-', '../../etc/passwd', '..%2F', '.hidden', '-v1'),
  );
}

function hexArb(length: number): fc.Arbitrary<string> {
  return stringOf(HEX, length, length);
}

export function validDigestArb(): fc.Arbitrary<string> {
  return fc.oneof({ arbitrary: hexArb(64).map((hex) => `sha256:${hex}`), weight: 4 }, { arbitrary: hexArb(128).map((hex) => `sha512:${hex}`), weight: 1 });
}

/** Outside the supported digest grammar by construction. */
export function invalidDigestArb(): fc.Arbitrary<string> {
  const sha256Hex = hexArb(64);
  const position = fc.nat();
  return fc.oneof(
    // Unsupported or malformed algorithms, with a plausible encoded part.
    fc
      .tuple(
        fc.constantFrom(
          'md5',
          'sha1',
          'sha384',
          'SHA256',
          'Sha256',
          'sha256+b64',
          'sha-256',
          'blake3',
          '',
          ' sha256',
          'sha256 ',
          '../sha256',
          'sha256/..',
          'sha512\0',
        ),
        fc.oneof(sha256Hex, hexArb(128), hexArb(32)),
      )
      .map(([algorithm, hex]) => `${algorithm}:${hex}`),
    // Wrong lengths for the algorithm.
    fc
      .tuple(fc.constantFrom('sha256', 'sha512'), fc.integer({ min: 0, max: 200 }))
      .filter(([algorithm, length]) => length !== (algorithm === 'sha256' ? 64 : 128))
      .chain(([algorithm, length]) => hexArb(length).map((hex) => `${algorithm}:${hex}`)),
    // Upper-case hex.
    fc.tuple(sha256Hex, position, fc.constantFrom(...'ABCDEF')).map(([hex, at, upper]) => {
      const i = at % hex.length;
      return `sha256:${hex.slice(0, i)}${upper}${hex.slice(i + 1)}`;
    }),
    // A foreign or non-hex character in the encoded part (same length or not).
    fc.tuple(sha256Hex, position, fc.constantFrom(...FOREIGN_CHARS, 'g', 'z', '.', '/', ':', '-', '_', '=')).map(([hex, at, char]) => {
      const i = at % hex.length;
      return `sha256:${hex.slice(0, i)}${char}${hex.slice(i + 1)}`;
    }),
    // Traversal and other shapes.
    fc
      .tuple(
        sha256Hex,
        fc.constantFrom(
          (h: string) => `sha256:../../../../etc/passwd${h.slice(28)}`,
          (h: string) => `sha256:${h}/..`,
          (h: string) => `sha256:${h}/../../../../etc/passwd`,
          (h: string) => `sha256:${h}\0`,
          (h: string) => `sha256/${h}`,
          (h: string) => `../sha256/${h}`,
          (h: string) => `sha256::${h}`,
          (h: string) => `:${h}`,
          (h: string) => h,
          (h: string) => `sha256:/${h.slice(1)}`,
          (h: string) => `sha256:${h.slice(0, 62)}..`,
          (h: string) => `sha256:${h.slice(0, 61)}/..`,
          (h: string) => `/etc/passwd:${h}`,
          (h: string) => `sha256:${h}:${h}`,
        ),
      )
      .map(([hex, shape]) => shape(hex)),
    fc.constantFrom('', ':', 'sha256:', '..', '/', 'latest', '/etc/passwd'),
  );
}
