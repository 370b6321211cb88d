import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { createLogger } from '../log/logger.ts';
import { parseExposition, sumSamples } from '../../tests/support/exposition.ts';
import { createMetrics } from './metrics.ts';
import { METRICS_PATH, startMetricsServer } from './server.ts';

const logger = createLogger('silent');

test('GET /metrics serves the registry; anything else is 404 or 405; close stops it', async () => {
  const metrics = createMetrics();
  metrics.publishFailures.inc(3);
  const server = await startMetricsServer({ registry: metrics.registry, addr: { host: '127.0.0.1', port: 0 }, logger });
  const base = `http://127.0.0.1:${server.addr.port}`;
  assert.equal(server.addr.host, '127.0.0.1');
  assert.ok(server.addr.port > 0);

  const res = await fetch(`${base}${METRICS_PATH}`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), metrics.registry.contentType);
  const scrape = parseExposition(await res.text());
  assert.equal(sumSamples(scrape, 'mirra_publish_failures_total'), 3);

  const withQuery = await fetch(`${base}${METRICS_PATH}?x=1`);
  assert.equal(withQuery.status, 200);
  await withQuery.body?.cancel();

  const head = await fetch(`${base}${METRICS_PATH}`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.ok(Number(head.headers.get('content-length')) > 0);

  for (const path of ['/', '/metrics/', '/v2/']) {
    const other = await fetch(`${base}${path}`);
    assert.equal(other.status, 404, path);
    await other.body?.cancel();
  }
  const post = await fetch(`${base}${METRICS_PATH}`, { method: 'POST', body: 'x' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  await post.body?.cancel();

  await server.close();
  await server.close(); // idempotent
  await assert.rejects(fetch(`${base}${METRICS_PATH}`));
});

test('a busy port is a clear error', async (t) => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.after(() => blocker.close());
  const address = blocker.address();
  assert.ok(address !== null && typeof address === 'object');
  await assert.rejects(startMetricsServer({ registry: createMetrics().registry, addr: { host: '127.0.0.1', port: address.port }, logger }), /EADDRINUSE/);
});
