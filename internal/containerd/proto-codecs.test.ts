// proto-codecs.ts is generated (hack/gen-protos.ts) and committed: it must be
// what the generator writes from the .proto files now, so that a .proto
// changed without `npm run gen:protos` fails here rather than at run time.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { CODECS_FILE, generateProtoCodecs } from '../../hack/gen-protos.ts';

test('the committed proto-codecs.ts is what hack/gen-protos.ts generates', async () => {
  const committed = await readFile(CODECS_FILE, 'utf8');
  const generated = await generateProtoCodecs();
  assert.ok(committed === generated, 'internal/containerd/proto-codecs.ts is stale: run npm run gen:protos');
});
