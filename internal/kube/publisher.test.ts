import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startKubeApi, type KubeApi } from '../../tests/kube/server.ts';
import { waitFor } from '../../tests/support/process.ts';
import { createLogger } from '../log/logger.ts';
import { createHasher } from '../routing/hash.ts';
import { encodeSummary } from '../routing/encode.ts';
import { HEADER_ANNOTATION, shardAnnotation } from '../routing/annotations.ts';
import { createKubeClient, type KubeClient } from './client.ts';
import { staticToken } from './credentials.ts';
import { createPublisher, type Publisher, type PublisherOptions } from './publisher.ts';

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
const hasher = await createHasher();

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
const summary = (keys: string[], generation: number, shards = 8): Record<string, string> => encodeSummary(keys, { hasher, shards, generation }).annotations;
const keys = Array.from({ length: 200 }, (_, i) => `sha256:${hasher.digest(`k${i}`).repeat(4)}`);

test('publishes the summary, then only the changed shards, and nothing when unchanged', async () => {
  const published: number[] = [];
  const pub = publisher({ onPublished: (_latencyMs, bytes) => published.push(bytes) });
  try {
    const first = summary(keys, 1);
    pub.publish(first);
    await pub.flush();
    assert.deepEqual(podAnnotations(), { 'other.io/keep': 'yes', ...first });
    assert.equal(patches.length, 1);
    assert.equal(patches[0]?.contentType, 'application/merge-patch+json');
    assert.deepEqual(patches[0]?.body, { metadata: { annotations: first } });

    const second = summary([...keys, 'docker.io/library/nginx:1.27'], 2);
    const changed = Object.keys(second).filter((name) => second[name] !== first[name]);
    assert.deepEqual(changed.sort(), [HEADER_ANNOTATION, changed.find((n) => n !== HEADER_ANNOTATION)].sort(), 'one shard and the header');
    pub.publish(second);
    await pub.flush();
    assert.equal(patches.length, 2);
    assert.deepEqual(patches[1]?.body, { metadata: { annotations: Object.fromEntries(changed.map((n) => [n, second[n]])) } });
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
      pub.publish({ [HEADER_ANNOTATION]: `g=${i}`, [shardAnnotation(0)]: `v${i}` });
      await sleep(10);
    }
    await waitFor('the patch', async () => patchCount() === 1, 3000);
    await sleep(400);
    assert.equal(patchCount(), 1);
    assert.deepEqual(patches[0]?.body, { metadata: { annotations: { [HEADER_ANNOTATION]: 'g=10', [shardAnnotation(0)]: 'v10' } } });
  } finally {
    await pub.close();
  }
});

test('a restart with fewer shards removes the stale shard annotations (read once, then null)', async () => {
  const old = summary(keys, 5, 8);
  const pod = api.get('Pod', 'default', POD)!;
  api.update({ ...pod, metadata: { ...pod.metadata, annotations: { 'other.io/keep': 'yes', ...old } } });
  const pub = publisher();
  try {
    const next = summary(keys, 6, 4);
    pub.publish(next);
    await pub.flush();
    const reads = requests().filter((r) => r.method === 'GET' && r.url.startsWith(`/api/v1/namespaces/default/pods/${POD}`));
    assert.equal(reads.length, 1, 'the pod was read once');
    const body = patches[0]?.body as { metadata: { annotations: Record<string, string | null> } };
    for (let i = 4; i < 8; i++) assert.equal(body.metadata.annotations[shardAnnotation(i)], null);
    assert.equal(body.metadata.annotations['other.io/keep'], undefined, 'other annotations are not touched');
    assert.deepEqual(podAnnotations(), { 'other.io/keep': 'yes', ...next });
  } finally {
    await pub.close();
  }
});

test('500 and 429 answers are retried until the patch lands; errors are logged, never thrown', async () => {
  for (const status of [500, 429] as const) {
    const failures: unknown[] = [];
    const pub = publisher({ onFailure: (err) => failures.push(err) });
    try {
      api.faults.failWith(status, 1200);
      const started = Date.now();
      pub.publish({ [HEADER_ANNOTATION]: `after-${status}` });
      await waitFor(`the patch after ${status}`, async () => podAnnotations()[HEADER_ANNOTATION] === `after-${status}`, 8000);
      assert.ok(failures.length >= 1, `failures seen for ${status}`);
      if (status === 429) assert.ok(Date.now() - started >= 1000, 'Retry-After was honoured');
      assert.ok(logLines.some((l) => l.includes('publishing the summary failed') && l.includes('"err"')));
    } finally {
      await pub.close();
    }
  }
});

test('a publish made while the API is down for 3 s lands after it returns', async () => {
  const pub = publisher();
  try {
    pub.publish({ [HEADER_ANNOTATION]: 'before' });
    await pub.flush();
    await api.stop();
    pub.publish({ [HEADER_ANNOTATION]: 'during' });
    await sleep(3000);
    assert.equal(podAnnotations()[HEADER_ANNOTATION], 'before');
    await api.restart();
    await waitFor('the patch after the outage', async () => podAnnotations()[HEADER_ANNOTATION] === 'during', 5000);
  } finally {
    await pub.close();
  }
});

test('an invalid patch (over the API limit) is not retried; the next change is published', async () => {
  const failures: unknown[] = [];
  const pub = publisher({ onFailure: (err) => failures.push(err) });
  try {
    pub.publish({ [shardAnnotation(0)]: 'x'.repeat(300_000) });
    await waitFor('the rejected patch', async () => failures.length === 1, 3000);
    await sleep(500);
    assert.equal(patchCount(), 1, 'a 422 is not retried');
    assert.ok(logLines.some((l) => l.includes('"status":422')));
    pub.publish({ [shardAnnotation(0)]: 'small' });
    await pub.flush();
    assert.equal(podAnnotations()[shardAnnotation(0)], 'small');
  } finally {
    await pub.close();
  }
});

test('close() cancels a pending publish', async () => {
  const pub = publisher({ debounceMs: 200 });
  pub.publish({ [HEADER_ANNOTATION]: 'never' });
  await pub.close();
  await sleep(350);
  assert.equal(patchCount(), 0);
  pub.publish({ [HEADER_ANNOTATION]: 'after-close' });
  await pub.flush();
  assert.equal(podAnnotations()[HEADER_ANNOTATION], undefined);
});
