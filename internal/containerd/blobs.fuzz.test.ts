// Property test of blobPath: no input ever names a file outside the content
// directory, and a valid digest names exactly blobs/<algorithm>/<hex>.
// Settings: tests/support/fuzz.ts.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { checkProperty } from '../../tests/support/fuzz.ts';
import { invalidDigestArb, validDigestArb } from '../../tests/support/fuzz/oci-arbitraries.ts';
import { parseDigest } from '../oci/digest.ts';
import { blobPath, InvalidDigestError } from './blobs.ts';

const TRAVERSAL_ATOMS = ['..', '.', '/', '\\', '%2e', '%2f', '\0', 'etc', 'passwd', 'sha256', 'sha512', ':', 'blobs', '~', 'C:'];

const digestLike = fc.oneof(
  validDigestArb(),
  invalidDigestArb(),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.array(fc.constantFrom(...TRAVERSAL_ATOMS), { maxLength: 20 }).map((atoms) => atoms.join('')),
  fc
    .tuple(fc.constantFrom('sha256:', 'sha512:', ''), fc.array(fc.constantFrom(...TRAVERSAL_ATOMS), { maxLength: 20 }))
    .map(([prefix, atoms]) => prefix + atoms.join('')),
);

test('blobPath never leaves the content directory, for any input', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'mirra-blobpath-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  // Absolute, relative, with a trailing slash and with dot segments: config values, not attacker input, but all must hold.
  const contentDirs = [
    join(root, 'content'),
    `${join(root, 'content')}${sep}`,
    join(root, 'a', '..', 'content'),
    relative(process.cwd(), join(root, 'content')),
  ];
  await checkProperty(
    t,
    fc.property(fc.constantFrom(...contentDirs), digestLike, (contentDir, digest) => {
      const blobsDir = resolve(contentDir, 'blobs');
      let path: string;
      try {
        path = blobPath(contentDir, digest);
      } catch (err) {
        assert.ok(err instanceof InvalidDigestError, String(err));
        assert.equal(parseDigest(digest), undefined, `a valid digest was refused: ${digest}`);
        return;
      }
      const parsed = parseDigest(digest);
      assert.ok(parsed !== undefined, `an invalid digest got a path: ${JSON.stringify(digest)}`);
      const resolved = resolve(path);
      assert.ok(resolved.startsWith(blobsDir + sep), `${resolved} outside ${blobsDir}`);
      assert.ok(!relative(blobsDir, resolved).split(sep).includes('..'));
      assert.equal(resolved, join(blobsDir, parsed.algorithm, parsed.hex));
      assert.ok(!path.includes('\0'));
    }),
    2000,
  );
});
