// The concurrency limits, against a real socket: requests over the limit get
// 503 with an OCI body at once; blob GETs are counted apart; probes never.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import type { ContentStore } from '../oci/store.ts';
import { createTestApp, listen } from '../../tests/support/registry/testkit.ts';

/** A store whose stat() waits until `gate` opens, and whose blob reads take `readMs`. */
function gatedStore(gate: Promise<void>, readMs: number): { store: ContentStore; digest: string } {
  const bytes = Buffer.alloc(1000, 1);
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  const store: ContentStore = {
    resolve: async () => {
      await gate;
      return digest;
    },
    stat: async (d) => (d === digest ? { digest, size: bytes.length } : undefined),
    read: async () =>
      Readable.from(
        (async function* () {
          await sleep(readMs);
          yield bytes;
        })(),
      ),
  };
  return { store, digest };
}

/** The status of a request, its body read to the end. */
async function statusOf(url: string, init?: RequestInit): Promise<number> {
  const response = await fetch(url, init);
  await response.arrayBuffer();
  return response.status;
}

test('requests over the limit are refused at once; streams and probes are counted apart', async (t) => {
  let open: () => void = () => {};
  const gate = new Promise<void>((resolve) => (open = resolve));
  const { store, digest } = gatedStore(gate, 400);
  const { app, log } = createTestApp({ store, concurrency: { maxRequests: 2, maxStreams: 1, retryAfterSeconds: 3 } });
  t.after(() => app.close());
  const base = await listen(app);
  // Two manifest HEADs by tag wait on the gate: the request limit is full.
  const waiting = [1, 2].map(() => fetch(`${base}/v2/a/manifests/latest`, { method: 'HEAD' }));
  await sleep(100);
  const refused = await fetch(`${base}/v2/a/manifests/latest`, { method: 'HEAD' });
  await refused.arrayBuffer();
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get('retry-after'), '3');
  const body = await fetch(`${base}/v2/`);
  assert.equal(body.status, 503);
  const parsed: unknown = await body.json();
  assert.match(JSON.stringify(parsed), /UNAVAILABLE.*too many requests in progress/);
  // Probes are never refused; a blob GET has its own limit.
  assert.equal(await statusOf(`${base}/healthz`), 200);
  assert.equal(await statusOf(`${base}/readyz`), 200);
  const stream = fetch(`${base}/v2/a/blobs/${digest}`);
  await sleep(100);
  const secondStream = await fetch(`${base}/v2/a/blobs/${digest}`);
  assert.equal(secondStream.status, 503);
  await secondStream.arrayBuffer();
  assert.equal((await (await stream).arrayBuffer()).byteLength, 1000);
  // Slots come back when responses end.
  open();
  // (Admitted: answered by the manifest handler, here 404 as the blob is no manifest.)
  for (const response of await Promise.all(waiting)) {
    await response.arrayBuffer();
    assert.equal(response.status, 404);
  }
  assert.equal(await statusOf(`${base}/v2/`), 200);
  assert.equal(await statusOf(`${base}/v2/a/blobs/${digest}`), 200);
  for (let i = 0; i < 100 && log.lines.filter((line) => line.msg === 'request' && line.status === 503).length < 3; i++) await sleep(10);
  assert.equal(log.lines.filter((line) => line.msg === 'request' && line.status === 503).length, 3, 'refusals are access-logged');
});
