// The pods/proxy subresource of the stand-in: a node:http server on 127.0.0.1
// plays the pod's agent, reached through the stand-in as a CLI reaches it
// through kube-apiserver (fetch, node:http and the real kubectl).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { startKubeApi, type KubeApi } from './server.ts';

const KUBECTL = '/usr/bin/kubectl';
const run = promisify(execFile);
const PODS = '/api/v1/namespaces/default/pods';

/** What the pod saw of one request. */
interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

let api: KubeApi;
let pod: Server;
let podPort = 0;
let closedPort = 0;
let dir = '';
const seen: Seen[] = [];
/** The pod's answer to /stream while it is open. */
let streaming: ServerResponse | undefined;

function answerJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string | string[]> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers }).end(text);
}

/** The pod's agent: answers by path, and echoes what it received otherwise. */
function agent(req: IncomingMessage, res: ServerResponse, body: string): void {
  const entry: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
  seen.push(entry);
  const path = new URL(req.url ?? '/', 'http://pod').pathname;
  if (path === '/missing') return answerJson(res, 404, { error: 'no such thing' }, { 'X-Pod': 'agent' });
  if (path === '/moved') return void res.writeHead(302, { Location: '/v2/', 'Content-Length': 0 }).end();
  if (path === '/hang') return; // never answers
  if (path === '/reset') return void req.socket.resetAndDestroy();
  if (path === '/stream') {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.write('first\n');
    streaming = res;
    return;
  }
  if (path === '/cut') {
    res.writeHead(200, { 'Content-Length': 100 });
    res.write('0123456789');
    setTimeout(() => req.socket.resetAndDestroy(), 20);
    return;
  }
  answerJson(res, 200, entry, { 'X-Pod': 'agent', 'X-Multi': ['a', 'b'], 'Access-Control-Allow-Origin': '*' });
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function podObject(name: string, status: Record<string, unknown>, containers: unknown[]): unknown {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' }, spec: { containers }, status: { phase: 'Running', ...status } };
}

before(async () => {
  pod = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => agent(req, res, body));
  });
  podPort = await listen(pod);
  const closed = createServer();
  closedPort = await listen(closed);
  await new Promise((resolve) => closed.close(resolve));
  api = await startKubeApi({ proxyResponseTimeoutMs: 500 });
  dir = await mkdtemp(join(tmpdir(), 'kube-stand-in-proxy-'));
  const ip = { podIP: '127.0.0.1' };
  // The first container declares no port: without one in the name, the agent's (the first declared) is used.
  api.create(
    podObject('agent', ip, [
      { name: 'sidecar', image: 's' },
      { name: 'agent', image: 'a', ports: [{ name: 'metrics', containerPort: podPort }] },
    ]),
  );
  api.create(podObject('no-ports', ip, [{ name: 'c', image: 'i' }]));
  api.create(podObject('closed', ip, [{ name: 'c', image: 'i', ports: [{ containerPort: closedPort }] }]));
  api.create(podObject('pending', {}, [{ name: 'c', image: 'i', ports: [{ containerPort: podPort }] }]));
  api.create(podObject('ips-only', { podIPs: [{ ip: '127.0.0.1' }] }, [{ name: 'c', image: 'i', ports: [{ containerPort: podPort }] }]));
});

after(async () => {
  await api.stop();
  pod.closeAllConnections();
  await new Promise((resolve) => pod.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

async function call(path: string, init: RequestInit = {}, base = api.url): Promise<Answer> {
  const res = await fetch(base + path, { redirect: 'manual', ...init });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

function json(answer: Answer): Record<string, unknown> {
  return JSON.parse(answer.text) as Record<string, unknown>;
}

function echoed(answer: Answer): Seen {
  assert.equal(answer.status, 200, answer.text);
  return JSON.parse(answer.text) as Seen;
}

function status(code: number, reason: string, message: string, details?: unknown): Record<string, unknown> {
  const body: Record<string, unknown> = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason };
  if (details !== undefined) body['details'] = details;
  return { ...body, code };
}

test('GET: the path and query reach the pod, its answer and headers come back', async () => {
  const path = `${PODS}/agent/proxy/v2/library/x?a=1&b=two%20words`;
  const answer = await call(path, { headers: { Accept: 'application/json', 'X-Forwarded-For': '10.9.8.7' } });
  const got = echoed(answer);
  assert.equal(got.method, 'GET');
  assert.equal(got.url, '/v2/library/x?a=1&b=two%20words');
  assert.equal(got.headers.accept, 'application/json');
  assert.equal(got.headers.host, new URL(api.url).host, "the caller's Host, as the real proxy leaves it");
  assert.equal(got.headers['x-forwarded-uri'], `${PODS}/agent/proxy/v2/library/x`);
  assert.equal(got.headers['x-forwarded-for'], '10.9.8.7, 127.0.0.1');
  assert.equal(answer.headers.get('x-pod'), 'agent');
  assert.equal(answer.headers.get('x-multi'), 'a, b');
  assert.equal(answer.headers.get('access-control-allow-origin'), null, 'CORS headers are stripped, as corsRemovingTransport does');
  assert.deepEqual(api.requests().at(-1), { method: 'GET', url: path, status: 200 });
});

test('POST, PUT, DELETE: bodies and headers are forwarded, Authorization is not', async () => {
  const payload = JSON.stringify({ digest: 'sha256:abc', size: 3 });
  const posted = echoed(
    await call(`${PODS}/agent/proxy/pull`, {
      method: 'POST',
      body: payload,
      headers: { 'Content-Type': 'application/json', 'X-Custom': 'yes', Authorization: 'Bearer caller-secret' },
    }),
  );
  assert.deepEqual([posted.method, posted.url, posted.body], ['POST', '/pull', payload]);
  assert.equal(posted.headers['x-custom'], 'yes');
  assert.equal(posted.headers['content-type'], 'application/json');
  assert.equal(posted.headers.authorization, undefined, "the caller's token never reaches the pod");

  const big = 'x'.repeat(2 << 20);
  const put = echoed(await call(`${PODS}/agent/proxy/blob`, { method: 'PUT', body: big }));
  assert.equal(put.body.length, big.length);
  const deleted = echoed(await call(`${PODS}/agent/proxy/cache/a?force=1`, { method: 'DELETE' }));
  assert.deepEqual([deleted.method, deleted.url], ['DELETE', '/cache/a?force=1']);
  const head = await call(`${PODS}/agent/proxy/x`, { method: 'HEAD' });
  assert.deepEqual([head.status, head.text, seen.at(-1)?.method], [200, '', 'HEAD']);
});

test('a chunked request body is streamed to the pod', async () => {
  const answer = await new Promise<string>((resolve, reject) => {
    const req = request(`${api.url}${PODS}/agent/proxy/chunked`, { method: 'DELETE' }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.setHeader('Transfer-Encoding', 'chunked');
    req.write('part one, ');
    setTimeout(() => req.end('part two'), 20);
  });
  assert.equal((JSON.parse(answer) as Seen).body, 'part one, part two');
});

test("the pod's status code and headers are passed back: a 404 with JSON", async () => {
  const answer = await call(`${PODS}/agent/proxy/missing`);
  assert.equal(answer.status, 404);
  assert.equal(answer.headers.get('content-type'), 'application/json');
  assert.equal(answer.headers.get('x-pod'), 'agent');
  assert.deepEqual(json(answer), { error: 'no such thing' });
});

test('the answer is streamed, not buffered', async () => {
  const res = await fetch(`${api.url}${PODS}/agent/proxy/stream`);
  assert.equal(res.status, 200);
  const reader = res.body?.getReader();
  assert.ok(reader);
  const first = await reader.read();
  assert.equal(Buffer.from(first.value ?? new Uint8Array()).toString(), 'first\n', 'the first chunk arrives while the pod is still answering');
  streaming?.end('second\n');
  let rest = '';
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += Buffer.from(chunk.value).toString();
  assert.equal(rest, 'second\n');
});

test('a pod that fails mid-answer cuts the answer off; a caller that goes away closes the pod connection', async () => {
  const cut = await fetch(`${api.url}${PODS}/agent/proxy/cut`);
  assert.equal(cut.status, 200);
  await assert.rejects(cut.text());
  assert.equal(api.requests().at(-1)?.status, 0, 'never answered completely');

  const controller = new AbortController();
  const res = await fetch(`${api.url}${PODS}/agent/proxy/stream`, { signal: controller.signal });
  const first = await res.body?.getReader().read();
  assert.equal(Buffer.from(first?.value ?? new Uint8Array()).toString(), 'first\n');
  const podSide = streaming;
  assert.ok(podSide);
  const closed = once(podSide, 'close');
  controller.abort();
  await closed;
  assert.equal(podSide.writableFinished, false);
  assert.equal((await call(`${PODS}/agent/proxy/x`)).status, 200, 'the stand-in carries on');
});

test('ports: the first declared container port, name:port, http:name:port', async () => {
  assert.equal(echoed(await call(`${PODS}/agent:${podPort}/proxy/a`)).url, '/a');
  assert.equal(echoed(await call(`${PODS}/http:agent:${podPort}/proxy/b`)).url, '/b');
  assert.equal(echoed(await call(`${PODS}/ips-only/proxy/c`)).url, '/c', 'status.podIPs[0] when podIP is not set');
  const other = await call(`${PODS}/agent:${closedPort}/proxy/`);
  assert.equal(other.status, 503, 'the port in the name wins over the declared one');
});

test("a port name is dialled as given, as the real server does: not looked up in the pod's container ports", async () => {
  const answer = await call(`${PODS}/agent:metrics/proxy/metrics`);
  assert.equal(answer.status, 503);
  assert.deepEqual(json(answer), status(503, 'ServiceUnavailable', 'error trying to reach service: dial tcp: lookup tcp/metrics: unknown port'));
});

test('without any declared port the pod is dialled on 80', async (t) => {
  const port80 = await new Promise<boolean>((resolve) => {
    const socket = connect(80, '127.0.0.1');
    socket.once('connect', () => resolve(socket.destroy() !== undefined));
    socket.once('error', () => resolve(false));
  });
  if (port80) return t.skip('something listens on 127.0.0.1:80');
  const answer = await call(`${PODS}/no-ports/proxy/x`);
  assert.equal(json(answer)['message'], 'error trying to reach service: dial tcp 127.0.0.1:80: connect: connection refused');
});

test('bad ids, https, and methods the proxy does not route are refused', async () => {
  const bad = await call(`${PODS}/a:b:c:d/proxy/`);
  assert.deepEqual(json(bad), status(400, 'BadRequest', 'invalid pod request "a:b:c:d"'));
  assert.equal((await call(`${PODS}/ftp:agent:${podPort}/proxy/`)).status, 400);
  const https = await call(`${PODS}/https:agent:${podPort}/proxy/`);
  assert.equal(https.status, 400);
  assert.match(String(json(https)['message']), /not supported by the Kubernetes API stand-in/);
  const propfind = await new Promise<number>((resolve, reject) => {
    const req = request(`${api.url}${PODS}/agent/proxy/x`, { method: 'PROPFIND' }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(propfind, 405);
});

test('unknown pod: 404 NotFound Status', async () => {
  const answer = await call(`${PODS}/nope:8080/proxy/x`);
  assert.equal(answer.status, 404);
  assert.deepEqual(json(answer), status(404, 'NotFound', 'pods "nope" not found', { name: 'nope', kind: 'pods' }));
  assert.equal((await call('/api/v1/namespaces/other/pods/agent/proxy/x')).status, 404, 'pods are looked up in the namespace of the path');
});

test('a pod without an IP: 400 "address not allowed", as the real server answers', async () => {
  const answer = await call(`${PODS}/pending/proxy/x`);
  assert.equal(answer.status, 400);
  assert.deepEqual(json(answer), status(400, 'BadRequest', 'address not allowed'));
});

test("the pod's port refuses or resets: 503 ServiceUnavailable", async () => {
  const refused = await call(`${PODS}/closed/proxy/x`, { method: 'POST', body: 'dropped' });
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get('content-type'), 'application/json');
  const message = `error trying to reach service: dial tcp 127.0.0.1:${closedPort}: connect: connection refused`;
  assert.deepEqual(json(refused), status(503, 'ServiceUnavailable', message));
  const reset = await call(`${PODS}/agent/proxy/reset`);
  assert.equal(reset.status, 503);
  assert.match(String(json(reset)['message']), /^error trying to reach service: (EOF|read tcp 127\.0\.0\.1:\d+: read: connection reset by peer)$/);
});

test('a pod that does not answer: 503 after the response-header timeout', async () => {
  const started = Date.now();
  const answer = await call(`${PODS}/agent/proxy/hang`);
  assert.equal(answer.status, 503);
  assert.equal(json(answer)['message'], 'error trying to reach service: net/http: timeout awaiting response headers');
  assert.ok(Date.now() - started < 5000);
});

test('.../proxy redirects to .../proxy/ for GET; redirects from the pod stay behind the proxy path', async () => {
  const root = await call(`${PODS}/agent/proxy?x=1`);
  assert.equal(root.status, 301);
  assert.equal(root.headers.get('location'), `${PODS}/agent/proxy/?x=1`);
  assert.equal(echoed(await call(`${PODS}/agent/proxy`, { method: 'POST' })).url, '/');
  const moved = await call(`${PODS}/agent:${podPort}/proxy/moved`);
  assert.equal(moved.status, 302);
  assert.equal(moved.headers.get('location'), `${PODS}/agent:${podPort}/proxy/v2/`);
});

test('injected faults apply to proxy requests as to any other', async () => {
  api.faults.failWith(500, 60_000);
  try {
    const answer = await call(`${PODS}/agent/proxy/x`);
    assert.equal(answer.status, 500);
    assert.equal(json(answer)['reason'], 'InternalError');
  } finally {
    api.faults.clear();
  }
  assert.equal((await call(`${PODS}/agent/proxy/x`)).status, 200);
});

test('with auth: 401 before anything reaches the pod; an authenticated caller gets through without its token', async () => {
  const guarded = await startKubeApi({ auth: { tokens: () => ['proxy-token-123456'] } });
  try {
    guarded.create(podObject('agent', { podIP: '127.0.0.1' }, [{ name: 'c', image: 'i', ports: [{ containerPort: podPort }] }]));
    const before = seen.length;
    const denied = await call(`${PODS}/agent/proxy/x`, {}, guarded.url);
    assert.deepEqual(json(denied), status(401, 'Unauthorized', 'Unauthorized'));
    assert.equal(seen.length, before, 'the pod saw nothing');
    const allowed = echoed(await call(`${PODS}/agent/proxy/x`, { headers: { Authorization: 'Bearer proxy-token-123456' } }, guarded.url));
    assert.equal(allowed.headers.authorization, undefined);
    assert.deepEqual(guarded.requests().at(-1), { method: 'GET', url: `${PODS}/agent/proxy/x`, status: 200, user: 'token:proxy-to' });
  } finally {
    await guarded.stop();
  }
});

test('kubectl get --raw through the proxy', async () => {
  const kubeconfig = await api.kubeconfigPath(dir);
  const kubectl = async (...args: string[]): Promise<string> =>
    (await run(KUBECTL, ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), ...args], { timeout: 15_000 })).stdout;
  const got = JSON.parse(await kubectl('get', '--raw', `${PODS}/agent:${podPort}/proxy/x?y=1`)) as Seen;
  assert.equal(got.url, '/x?y=1');
  assert.equal(got.headers.authorization, undefined, "kubectl's token stays with the API server");
  await assert.rejects(kubectl('get', '--raw', `${PODS}/nope/proxy/x`), (err: Error & { stderr?: string }) => {
    assert.match(err.stderr ?? '', /pods "nope" not found/);
    return true;
  });
  await assert.rejects(kubectl('get', '--raw', `${PODS}/closed/proxy/x`), (err: Error & { stderr?: string }) => {
    const refused = `Error from server (ServiceUnavailable): error trying to reach service: dial tcp 127.0.0.1:${closedPort}: connect: connection refused`;
    assert.equal(err.stderr?.trim(), refused);
    return true;
  });
});
