// The status publisher against the stand-in API server (behind a proxy that
// records the PATCH bodies): mirra's status annotations (internal/owners/
// status.ts) as JSON merge patches with only the changes, the first version's
// summary annotations removed with null, other annotations never touched,
// debounce, retries with backoff, 422s not retried, close(); and the pure
// diffAnnotations.
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startKubeApi, type KubeApi } from '../../tests/kube/server.ts';
import { waitFor } from '../../tests/support/process.ts';
import { createLogger } from '../log/logger.ts';
import { OWNED_ANNOTATION, STATUS_ANNOTATION, statusAnnotations, UPDATED_ANNOTATION, type IndexStatus } from '../owners/status.ts';
import { createKubeClient, type KubeClient } from './client.ts';
import { staticToken } from './credentials.ts';
import { createPublisher, diffAnnotations, type Publisher, type PublisherOptions } from './publisher.ts';

interface Patch {
  contentType: string;
  body: unknown;
}

let api: KubeApi;
let proxy: Server;
let client: KubeClient;
const patches: Patch[] = [];
let requestsAtStart = 0;
const logLines: string[] = [];
const logger = createLogger('debug', { write: (line: string) => void logLines.push(line) });

/** Forwards to the stand-in and records the bodies of PATCH requests (the stand-in records only method and URL). */
function startRecordingProxy(target: URL): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'PATCH') patches.push({ contentType: req.headers['content-type'] ?? '', body: JSON.parse(body.toString('utf8')) });
      const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      upstream.end(body);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

before(async () => {
  api = await startKubeApi();
  proxy = await startRecordingProxy(new URL(api.url));
  const port = (proxy.address() as AddressInfo).port;
  const server = `http://127.0.0.1:${port}`;
  client = createKubeClient({
    server,
    ca: undefined,
    cert: undefined,
    key: undefined,
    insecureSkipTlsVerify: true,
    tlsServerName: undefined,
    credentials: staticToken('t'),
  });
});

after(async () => {
  client.close();
  proxy.closeAllConnections();
  await new Promise((resolve) => proxy.close(resolve));
  await api.stop();
});

const POD = 'mirra-self';

beforeEach(() => {
  api.faults.clear();
  if (api.get('Pod', 'default', POD) !== undefined) api.delete('Pod', 'default', POD);
  api.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: POD, namespace: 'default', annotations: { 'other.io/keep': 'yes' } } });
  patches.length = 0;
  logLines.length = 0;
  requestsAtStart = api.requests().length;
});

function publisher(extra: Partial<PublisherOptions> = {}): Publisher {
  return createPublisher({ client, namespace: 'default', podName: POD, logger, debounceMs: 100, minBackoffMs: 50, maxBackoffMs: 400, ...extra });
}

const podAnnotations = (): Record<string, string> => (api.get('Pod', 'default', POD)?.metadata as { annotations?: Record<string, string> }).annotations ?? {};
const requests = () => api.requests().slice(requestsAtStart);
const patchCount = (): number => requests().filter((r) => r.method === 'PATCH').length;
/** The status annotations as p2p.ts publishes them: the status and its update time. */
const status = (update: Partial<IndexStatus>, updated: string): Record<string, string> => ({
  ...statusAnnotations({ keys: 120, owned: [3, 17, 42], postings: 900, members: 5, ...update }),
  [UPDATED_ANNOTATION]: updated,
});
/** The first version's summary annotations, as an agent before the upgrade left them. */
const LEGACY: Readonly<Record<string, string>> = {
  'mirra.dev/summary': 'v=1;g=1733472000000;n=8;k=200',
  ...Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`mirra.dev/shard-${i}`, `AAAA${i}`])),
};

test('publishes the status, then only the changed annotations, and nothing when unchanged', async () => {
  const published: number[] = [];
  const pub = publisher({ onPublished: (_latencyMs, bytes) => published.push(bytes) });
  try {
    const first = status({}, '2026-12-06T08:00:00.000Z');
    pub.publish(first);
    await pub.flush();
    assert.deepEqual(podAnnotations(), { 'other.io/keep': 'yes', ...first });
    assert.equal(patches.length, 1);
    assert.equal(patches[0]?.contentType, 'application/merge-patch+json');
    assert.deepEqual(patches[0]?.body, { metadata: { annotations: first } });

    const second = status({ keys: 121, postings: 901 }, '2026-12-06T08:03:00.000Z');
    assert.equal(second[OWNED_ANNOTATION], first[OWNED_ANNOTATION], 'same owned shards');
    pub.publish(second);
    await pub.flush();
    assert.equal(patches.length, 2);
    const changed = { [STATUS_ANNOTATION]: second[STATUS_ANNOTATION], [UPDATED_ANNOTATION]: second[UPDATED_ANNOTATION] };
    assert.deepEqual(patches[1]?.body, { metadata: { annotations: changed } }, 'the header and the update time, not the owned shards');
    assert.deepEqual(podAnnotations(), { 'other.io/keep': 'yes', ...second });

    const before = api.requests().length;
    pub.publish({ ...second });
    await pub.flush();
    await sleep(250);
    assert.equal(api.requests().length, before, 'no request at all when nothing changed');
    assert.equal(published.length, 2);
    assert.ok(published.every((bytes) => bytes > 0));
  } finally {
    await pub.close();
  }
});

test('debounce coalesces 10 quick publishes into one patch with the latest set', async () => {
  const pub = publisher({ debounceMs: 300 });
  try {
    for (let i = 1; i <= 10; i++) {
      pub.publish(status({ keys: i }, `t${i}`));
      await sleep(10);
    }
    await waitFor('the patch', async () => patchCount() === 1, 3000);
    await sleep(400);
    assert.equal(patchCount(), 1);
    assert.deepEqual(patches[0]?.body, { metadata: { annotations: status({ keys: 10 }, 't10') } });
  } finally {
    await pub.close();
  }
});

test("the first version's summary annotations on the pod are removed with null (read once); others are not touched", async () => {
  const pod = api.get('Pod', 'default', POD);
  assert.ok(pod);
  api.update({ ...pod, metadata: { ...pod.metadata, annotations: { 'other.io/keep': 'yes', 'mirra.dev/other': 'x', ...LEGACY } } });
  const pub = publisher();
  try {
    const next = status({}, '2026-12-06T08:00:00.000Z');
    pub.publish(next);
    await pub.flush();
    const reads = requests().filter((r) => r.method === 'GET' && r.url.startsWith(`/api/v1/namespaces/default/pods/${POD}`));
    assert.equal(reads.length, 1, 'the pod was read once');
    const nulls = Object.fromEntries(Object.keys(LEGACY).map((name) => [name, null]));
    assert.deepEqual(patches[0]?.body, { metadata: { annotations: { ...next, ...nulls } } }, 'the status, and null for every legacy annotation');
    assert.deepEqual(podAnnotations(), { 'other.io/keep': 'yes', 'mirra.dev/other': 'x', ...next });
  } finally {
    await pub.close();
  }
});

test('annotations outside the status are not published (a warning names them)', async () => {
  const pub = publisher();
  try {
    const next = status({}, 't1');
    pub.publish({ ...next, 'other.io/keep': 'changed' });
    await pub.flush();
    assert.deepEqual(patches[0]?.body, { metadata: { annotations: next } });
    assert.deepEqual(podAnnotations(), { 'other.io/keep': 'yes', ...next });
    assert.ok(logLines.some((l) => l.includes('not part of the status') && l.includes('other.io/keep')));
  } finally {
    await pub.close();
  }
});

test('500 and 429 answers are retried until the patch lands; errors are logged, never thrown', async () => {
  for (const code of [500, 429] as const) {
    const failures: unknown[] = [];
    const pub = publisher({ onFailure: (err) => failures.push(err) });
    try {
      api.faults.failWith(code, 1200);
      const started = Date.now();
      pub.publish(status({}, `after-${code}`));
      await waitFor(`the patch after ${code}`, async () => podAnnotations()[UPDATED_ANNOTATION] === `after-${code}`, 8000);
      assert.ok(failures.length >= 1, `failures seen for ${code}`);
      if (code === 429) assert.ok(Date.now() - started >= 1000, 'Retry-After was honoured');
      assert.ok(logLines.some((l) => l.includes('publishing the status failed') && l.includes('"err"')));
    } finally {
      await pub.close();
    }
  }
});

test('a publish made while the API is down for 3 s lands after it returns', async () => {
  const pub = publisher();
  try {
    pub.publish(status({}, 'before'));
    await pub.flush();
    await api.stop();
    pub.publish(status({}, 'during'));
    await sleep(3000);
    assert.equal(podAnnotations()[UPDATED_ANNOTATION], 'before');
    await api.restart();
    await waitFor('the patch after the outage', async () => podAnnotations()[UPDATED_ANNOTATION] === 'during', 5000);
  } finally {
    await pub.close();
  }
});

test('an invalid patch (over the API limit) is not retried; the next change is published', async () => {
  const failures: unknown[] = [];
  const pub = publisher({ onFailure: (err) => failures.push(err) });
  try {
    pub.publish({ [OWNED_ANNOTATION]: 'x'.repeat(300_000) });
    await waitFor('the rejected patch', async () => failures.length === 1, 3000);
    await sleep(500);
    assert.equal(patchCount(), 1, 'a 422 is not retried');
    assert.ok(logLines.some((l) => l.includes('"status":422')));
    pub.publish({ [OWNED_ANNOTATION]: '1,2' });
    await pub.flush();
    assert.equal(podAnnotations()[OWNED_ANNOTATION], '1,2');
  } finally {
    await pub.close();
  }
});

test('close() cancels a pending publish', async () => {
  const pub = publisher({ debounceMs: 200 });
  pub.publish(status({}, 'never'));
  await pub.close();
  await sleep(350);
  assert.equal(patchCount(), 0);
  pub.publish(status({}, 'after-close'));
  await pub.flush();
  assert.equal(podAnnotations()[UPDATED_ANNOTATION], undefined);
});

test('diffAnnotations: changed and new values, null for status annotations that are gone, others never touched', () => {
  const next = status({}, 't2');
  assert.deepEqual(diffAnnotations(undefined, next), next, 'nothing known: everything');
  assert.deepEqual(diffAnnotations(next, { ...next }), {}, 'nothing to publish');
  const prev = { ...status({ keys: 1 }, 't1'), ...LEGACY, 'other.io/keep': 'yes', 'mirra.dev/other': 'x', 'other.io/gone': undefined };
  const nulls = Object.fromEntries(Object.keys(LEGACY).map((name) => [name, null]));
  assert.deepEqual(diffAnnotations(prev, next), { [STATUS_ANNOTATION]: next[STATUS_ANNOTATION], [UPDATED_ANNOTATION]: 't2', ...nulls });
  const { [OWNED_ANNOTATION]: _owned, ...withoutOwned } = next;
  assert.deepEqual(diffAnnotations(next, withoutOwned), { [OWNED_ANNOTATION]: null }, 'a status annotation no longer wanted');
});
