import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { createMemoryStore } from '../oci/storetest/memory-store.ts';
import { createRegistryApp } from './app.ts';

test('/healthz answers; /readyz follows the readiness function', async () => {
  let reason: string | undefined = 'containerd unreachable';
  const app = createRegistryApp({
    store: createMemoryStore(),
    logger: pino({ level: 'silent' }),
    mirroredRegistries: [],
    resolveTags: true,
    notReady: () => reason,
  });
  try {
    assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
    const notReady = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(notReady.statusCode, 503);
    assert.match(notReady.body, /containerd/);
    reason = 'draining';
    assert.match((await app.inject({ method: 'GET', url: '/readyz' })).body, /not ready: draining/);
    reason = undefined;
    assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
  } finally {
    await app.close();
  }
});
