// SIGTERM against a real agent process serving from a real containerd: a
// slow client's blob stream finishes within the grace period with the right
// bytes while new connections are refused, and the agent exits 0; a stream
// longer than the grace is cut and the agent still exits 0, in time.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { startAgent, type TestAgent } from '../support/agent.ts';
import type { TestContainerd } from '../support/containerd.ts';
import type { GeneratedLayer } from '../support/image.ts';
import { freePort } from '../support/process.ts';
import { startPulledImage, type PulledImage } from '../support/pulled-image.ts';
import type { Upstream } from '../support/upstream.ts';

const MiB = 1024 * 1024;
const HOST = '127.0.0.3';

interface SlowDownload {
  /** Resolves once the response headers are in. */
  started: Promise<number>;
  /** Resolves when the body ended or was cut. */
  done: Promise<{ status: number; bytes: number; sha256: string; complete: boolean }>;
}

/** A GET that reads the body at about `bytesPerSec`, hashing it. */
function slowDownload(url: string, bytesPerSec: number): SlowDownload {
  let onStarted: (status: number) => void = () => {};
  const started = new Promise<number>((resolve) => (onStarted = resolve));
  const done = new Promise<{ status: number; bytes: number; sha256: string; complete: boolean }>((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      onStarted(res.statusCode ?? 0);
      const hash = createHash('sha256');
      let bytes = 0;
      const begin = performance.now();
      void (async () => {
        try {
          for await (const chunk of res) {
            const buffer = chunk as Buffer;
            hash.update(buffer);
            bytes += buffer.length;
            const aheadMs = (bytes / bytesPerSec) * 1000 - (performance.now() - begin);
            if (aheadMs > 0) await sleep(aheadMs);
          }
        } catch {
          // cut: reported by `complete`
        }
        resolve({ status: res.statusCode ?? 0, bytes, sha256: `sha256:${hash.digest('hex')}`, complete: res.complete });
      })();
    });
    req.on('error', reject);
    req.end();
  });
  return { started, done };
}

function connectError(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code));
  });
}

describe('SIGTERM with blob streams running', { timeout: 180_000 }, () => {
  let dir: string;
  let node: PulledImage | undefined;
  let upstream: Upstream;
  let containerd: TestContainerd;
  let layer: GeneratedLayer;
  const agents: TestAgent[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mirra-it-shutdown-'));
    node = await startPulledImage({ dir, repository: 'team/app', layers: [24 * MiB], seed: 'it-shutdown' });
    ({ upstream, containerd, layer } = node);
  });

  after(async () => {
    for (const agent of agents) await agent.stop();
    await node?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const start = async (name: string, graceSeconds: number): Promise<TestAgent> => {
    const agent = await startAgent({
      dir,
      name,
      host: HOST,
      port: await freePort(HOST),
      containerdSock: containerd.socket,
      contentPath: containerd.contentDir,
      extraArgs: ['--shutdown-grace', `${graceSeconds}s`, '--log-level', 'info'],
    });
    agents.push(agent);
    return agent;
  };
  const blobUrl = (agent: TestAgent): string => `${agent.url}/v2/team/app/blobs/${layer.digest}?ns=${encodeURIComponent(upstream.host)}`;

  test('a slow stream finishes with the right bytes, new connections are refused, exit 0', async () => {
    const agent = await start('agent-drain', 15);
    // 24 MiB at 8 MiB/s: about 3 s, far more than the kernel's socket buffers hold.
    const download = slowDownload(blobUrl(agent), 8 * MiB);
    assert.equal(await download.started, 200);
    await sleep(500);
    const signalled = performance.now();
    agent.process.kill('SIGTERM');
    await sleep(300);
    assert.equal(await connectError(agent.host, agent.port), 'ECONNREFUSED');
    const result = await download.done;
    assert.equal(result.status, 200);
    assert.equal(result.complete, true);
    assert.equal(result.bytes, layer.size);
    assert.equal(result.sha256, layer.digest);
    assert.equal(await agent.process.exited, 0);
    assert.ok(performance.now() - signalled < 15_000);
    const lines = await agent.logLines();
    const closed = lines.find((line) => line.msg === 'registry server closed');
    assert.equal(closed?.ending, 'drained');
    assert.equal(closed?.connectionsCut, 0);
    assert.ok(!lines.some((line) => String(line.msg).startsWith('still running')), 'no forced exit');
  });

  test('a stream longer than the grace is cut, and the agent exits 0 within grace + margin', async () => {
    const graceSeconds = 1;
    const agent = await start('agent-cut', graceSeconds);
    // 24 MiB at 1 MiB/s: 24 s, far longer than the grace.
    const download = slowDownload(blobUrl(agent), 1 * MiB);
    assert.equal(await download.started, 200);
    await sleep(300);
    const signalled = performance.now();
    agent.process.kill('SIGTERM');
    assert.equal(await agent.process.exited, 0);
    const exitMs = performance.now() - signalled;
    assert.ok(exitMs >= graceSeconds * 1000 - 100 && exitMs < graceSeconds * 1000 + 3000, `exited ${exitMs} ms after SIGTERM`);
    const result = await download.done;
    assert.equal(result.complete, false);
    assert.ok(result.bytes < layer.size);
    const lines = await agent.logLines();
    const closed = lines.find((line) => line.msg === 'registry server closed');
    assert.equal(closed?.ending, 'grace-over');
    assert.equal(closed?.connectionsCut, 1);
    assert.ok(!lines.some((line) => String(line.msg).startsWith('still running')), 'no forced exit');
  });
});
