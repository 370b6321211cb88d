import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startKubeApi, type KubeApi } from '../../tests/kube/server.ts';
import { createKubeClient, KubeApiError, type ApiTarget, type KubeClient, type WatchEvent } from './client.ts';
import { staticToken, type Credentials } from './credentials.ts';

let api: KubeApi;
let client: KubeClient;

const target = (server: string, credentials: Credentials = staticToken('t')): ApiTarget => ({
  server,
  ca: undefined,
  cert: undefined,
  key: undefined,
  insecureSkipTlsVerify: true,
  tlsServerName: undefined,
  credentials,
});

before(async () => {
  api = await startKubeApi({ bookmarkIntervalMs: 100 });
  client = createKubeClient(target(api.url));
});

after(async () => {
  client.close();
  await api.stop();
});

const signal = (): AbortSignal => AbortSignal.timeout(5000);

test('get, merge patch and a watch against the API stand-in', async () => {
  api.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'a', namespace: 'default', labels: { app: 'x' }, annotations: { keep: '1' } } });
  const list = await client.get('/api/v1/namespaces/default/pods', { labelSelector: 'app=x' }, signal());
  const rv = (list as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
  assert.equal((list as { items: unknown[] }).items.length, 1);
  const events: WatchEvent[] = [];
  const controller = new AbortController();
  const watching = client.watch('/api/v1/namespaces/default/pods', { resourceVersion: rv, allowWatchBookmarks: true }, (e) => events.push(e), {
    signal: controller.signal,
    idleTimeoutMs: 5000,
  });
  const patched = await client.mergePatch('/api/v1/namespaces/default/pods/a', { metadata: { annotations: { keep: null, added: 'yes' } } }, signal());
  assert.deepEqual((patched as { metadata: { annotations: unknown } }).metadata.annotations, { added: 'yes' });
  const patch = api.requests().find((r) => r.method === 'PATCH');
  assert.equal(patch?.status, 200);
  while (!events.some((e) => e.type === 'MODIFIED') || !events.some((e) => e.type === 'BOOKMARK')) await new Promise((r) => setTimeout(r, 20));
  controller.abort();
  await assert.rejects(watching, { name: 'AbortError' });
  const url = api.requests().find((r) => r.url.includes('watch=true'))?.url ?? '';
  assert.match(url, /allowWatchBookmarks=true/);
  await assert.rejects(client.get('/api/v1/namespaces/default/pods/missing', {}, signal()), (err: unknown) => {
    assert.ok(err instanceof KubeApiError);
    assert.equal(err.status, 404);
    assert.match(err.message, /^HTTP 404: pods "missing" not found$/);
    return true;
  });
});

/** A raw HTTP server for what the stand-in does not do on purpose (odd framing, silence, a path prefix). */
async function raw(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, server, close: () => new Promise((resolve) => (server.closeAllConnections(), server.close(() => resolve()))) };
}

test('watch events split across chunks, a path prefix, the bearer token; the stream end resolves', async () => {
  const seen: string[] = [];
  const server = await raw((req, res) => {
    seen.push(`${req.url} ${req.headers.authorization}`);
    res.writeHead(200, { 'Content-Type': 'application/json' });
    const text = '{"type":"ADDED","object":{"n":"é"}}\n{"type":"BOOKMARK","object":{"n":2}}\n{"type":"DELETED","object":{"n":3}}';
    const bytes = Buffer.from(text);
    const cut = text.indexOf('é') + 1; // inside the two bytes of é
    res.write(bytes.subarray(0, cut));
    setTimeout(() => res.end(bytes.subarray(cut)), 20);
  });
  const prefixed = createKubeClient(target(`${server.url}/k8s/clusters/c1/`));
  try {
    const events: WatchEvent[] = [];
    await prefixed.watch('/api/v1/pods', { labelSelector: 'a=b' }, (e) => events.push(e), { signal: signal(), idleTimeoutMs: 1000 });
    assert.deepEqual(events, [
      { type: 'ADDED', object: { n: 'é' } },
      { type: 'BOOKMARK', object: { n: 2 } },
      { type: 'DELETED', object: { n: 3 } },
    ]);
    assert.deepEqual(seen, ['/k8s/clusters/c1/api/v1/pods?labelSelector=a%3Db&watch=true Bearer t']);
  } finally {
    prefixed.close();
    await server.close();
  }
});

test('a silent watch, a watch never answered, garbage, an endless event and a cut stream all reject', async () => {
  let mode = '';
  const server = await raw((_req, res) => {
    if (mode === 'silent') res.writeHead(200).write('');
    else if (mode === 'garbage') res.writeHead(200).write('{"type":"ADDED"\n');
    else if (mode === 'huge') res.writeHead(200).write(`{"type":"ADDED","object":"${'x'.repeat(9 * 1024 * 1024)}`);
    else if (mode === 'cut') {
      res.writeHead(200).write('{"type":"ADDED","object":{}}\n{"type":');
      setTimeout(() => res.socket?.destroy(), 20);
    }
    // 'unanswered': no status line at all
  });
  const silentClient = createKubeClient(target(server.url));
  const watch = (): Promise<void> => silentClient.watch('/w', {}, () => {}, { signal: signal(), idleTimeoutMs: 200 });
  try {
    mode = 'silent';
    await assert.rejects(watch(), { name: 'TimeoutError', message: 'the watch sent nothing for 200 ms' });
    mode = 'unanswered';
    await assert.rejects(watch(), { name: 'TimeoutError', message: 'the API did not answer the watch within 200 ms' });
    mode = 'garbage';
    await assert.rejects(watch(), /not JSON/);
    mode = 'huge';
    await assert.rejects(watch(), /a watch event over 8388608 characters/);
    mode = 'cut';
    await assert.rejects(watch(), /closed the watch connection|aborted/);
  } finally {
    silentClient.close();
    await server.close();
  }
});

test('a 401 drops the cached token; error bodies that are not a Status still give the code', async () => {
  let invalidated = 0;
  const credentials: Credentials = { authorization: async () => 'Bearer old', invalidate: () => void invalidated++ };
  let status = 401;
  const server = await raw((_req, res) => res.writeHead(status, { 'Content-Type': 'text/html', 'Retry-After': '3' }).end('<html>no</html>'));
  const c = createKubeClient(target(server.url, credentials));
  try {
    await assert.rejects(c.get('/x', {}, signal()), (err: unknown) => err instanceof KubeApiError && err.status === 401 && err.body === '<html>no</html>');
    assert.equal(invalidated, 1);
    status = 503;
    await assert.rejects(
      c.get('/x', {}, signal()),
      (err: unknown) => err instanceof KubeApiError && err.message === 'HTTP 503' && err.headers['retry-after'] === '3',
    );
    assert.equal(invalidated, 1);
    status = 200;
    await assert.rejects(c.get('/x', {}, signal()), /the API answered GET \/x with a body that is not JSON/);
  } finally {
    c.close();
    await server.close();
  }
});
