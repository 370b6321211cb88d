// The sendfile path (send-sendfile.ts, native/sendfile.c) against a real
// socket, real files and the addon compiled for this run: whole answers and
// ranges byte for byte (random ranges against the file's own bytes), a
// connection kept alive after a send, a short file answered before any
// header, a client that leaves mid-body or stops reading (the addon's idle
// limit), a slow but steady one that is not cut, and no descriptor left open.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import { Agent, createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { buildNative } from '../../hack/build-native.ts';
import { streamFile } from './send-file.ts';
import { loadSendfile, type SendfileAddon } from './sendfile-addon.ts';
import type { StreamOutcome } from './send-stream.ts';

const MiB = 1024 * 1024;

let dir: string;
let addon: SendfileAddon;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mirra-sendfile-'));
  const loaded = loadSendfile({ kind: 'path', path: await buildNative(join(dir, 'native')) });
  assert.ok(loaded.addon !== undefined);
  addon = loaded.addon;
});
after(() => rm(dir, { recursive: true, force: true }));

async function blobFile(name: string, bytes: Buffer): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return path;
}

interface Slice {
  start: number;
  expectedBytes: number;
}

interface Served {
  url: string;
  server: Server;
  outcomes: Array<Promise<StreamOutcome | Error>>;
  /** Whether each answer went through sendfile (false: the copying path). */
  viaSendfile: boolean[];
}

/** A server answering every request with `slice` of the file at `path`, idle timeout `idleMs` (0: none). */
async function serve(t: TestContext, path: string, slice: (req: IncomingMessage) => Slice, idleMs = 0): Promise<Served> {
  const served: Served = { url: '', server: createServer(), outcomes: [], viaSendfile: [] };
  served.server.on('request', (req: IncomingMessage, res) => {
    if (idleMs > 0) req.socket.setTimeout(idleMs);
    const { start, expectedBytes } = slice(req);
    served.outcomes.push(
      open(path, 'r').then((handle) => {
        const options = { expectedBytes, writeHead: () => res.writeHead(200, { 'content-length': String(expectedBytes) }), sendfile: addon };
        served.viaSendfile.push(!(req.socket as Socket & { encrypted?: boolean }).encrypted);
        return streamFile(res, handle, start, options).catch((err: Error) => {
          res.writeHead(500).end('failed before headers');
          return err;
        });
      }),
    );
  });
  served.server.listen(0, '127.0.0.1');
  await once(served.server, 'listening');
  t.after(() => {
    served.server.closeAllConnections();
    return new Promise<void>((resolve) => served.server.close(() => resolve()));
  });
  served.url = `http://127.0.0.1:${(served.server.address() as AddressInfo).port}/`;
  return served;
}

function get(url: string, agent?: Agent, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), socket: res.socket }));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end();
  });
}

/** The outcome of the server's `i`-th answer, once the server has its request. */
async function outcomeOf(served: Served, i: number): Promise<StreamOutcome | Error> {
  while (served.outcomes[i] === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
  return served.outcomes[i];
}

async function openDescriptors(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('sendfile', () => {
  test('a whole file, then a second answer on the same kept-alive connection', async (t) => {
    const bytes = randomBytes(12 * MiB + 123);
    const path = await blobFile('whole', bytes);
    const served = await serve(t, path, () => ({ start: 0, expectedBytes: bytes.length }));
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    const first = await get(served.url, agent);
    assert.equal(first.status, 200);
    assert.equal(sha(first.body), sha(bytes));
    const second = await get(served.url, agent);
    assert.equal(sha(second.body), sha(bytes));
    assert.equal(second.socket, first.socket, 'the connection was kept alive');
    for (const outcome of await Promise.all(served.outcomes)) assert.deepEqual(outcome, { kind: 'complete', bytesSent: bytes.length });
    assert.deepEqual(served.viaSendfile, [true, true]);
  });

  test('random ranges are the file bytes they name (oracle: the file read by subarray)', async (t) => {
    const bytes = randomBytes(3 * MiB + 17);
    const path = await blobFile('ranges', bytes);
    const served = await serve(t, path, (req) => {
      const [start, length] = String(req.headers['x-slice']).split(',').map(Number);
      return { start: start ?? 0, expectedBytes: length ?? 0 };
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 2 });
    t.after(() => agent.destroy());
    // A seeded generator (mulberry32): a failure names the seed to replay.
    const seed = Number(process.env.MIRRA_SENDFILE_SEED ?? Date.now() % 2 ** 31);
    let state = seed;
    const random = (): number => {
      state = (state + 0x6d2b79f5) | 0;
      let x = Math.imul(state ^ (state >>> 15), 1 | state);
      x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
      return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
    };
    t.diagnostic(`seed ${seed} (MIRRA_SENDFILE_SEED)`);
    for (let i = 0; i < 40; i++) {
      const start = i === 0 ? 0 : Math.floor(random() * bytes.length);
      const length = i === 1 ? bytes.length - start : 1 + Math.floor(random() * Math.min(bytes.length - start, i % 2 === 0 ? 4096 : 2 * MiB));
      const { body } = await get(served.url, agent, { 'x-slice': `${start},${length}` });
      assert.equal(body.length, length, `seed ${seed}, range ${start}+${length}: length`);
      assert.ok(body.equals(bytes.subarray(start, start + length)), `seed ${seed}, range ${start}+${length}: bytes`);
    }
  });

  test('a file shorter than the answer: an error before any header, nothing sent', async (t) => {
    const path = await blobFile('short', randomBytes(1000));
    const served = await serve(t, path, () => ({ start: 0, expectedBytes: 5000 }));
    const { status } = await get(served.url);
    assert.equal(status, 500);
    const outcome = await outcomeOf(served, 0);
    assert.ok(outcome instanceof Error && /file has 1000 bytes/.test(outcome.message));
  });

  test('a client that leaves mid-body ends the send (client-gone); no descriptor stays open', async (t) => {
    const bytes = randomBytes(64 * MiB);
    const path = await blobFile('leaving', bytes);
    const served = await serve(t, path, () => ({ start: 0, expectedBytes: bytes.length }));
    const before = await openDescriptors();
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve) => {
        const req = httpRequest(served.url, (res) => {
          res.once('data', () => {
            // Stop reading, so that the send waits for the socket, then leave.
            res.pause();
            setTimeout(() => {
              req.destroy();
              resolve();
            }, 50);
          });
        });
        req.once('error', () => {});
        req.end();
      });
    }
    const outcomes = await Promise.all(served.outcomes);
    for (const outcome of outcomes) {
      assert.ok(!(outcome instanceof Error) && outcome.kind === 'client-gone', JSON.stringify(outcome));
      assert.ok(outcome.bytesSent < bytes.length);
    }
    // The addon's dup of each socket is closed with its poll handle, a loop turn later.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(await openDescriptors(), before);
  });

  test('a client that stops reading is cut after the idle timeout; a slow but steady one is not', async (t) => {
    const bytes = randomBytes(48 * MiB);
    const path = await blobFile('idle', bytes);
    const served = await serve(t, path, () => ({ start: 0, expectedBytes: bytes.length }), 400);
    // Stalled: reads the first bytes, then nothing (a paused client sees the close only once it reads again).
    const started = Date.now();
    let received = 0;
    const clientClosed = new Promise<void>((resolve) => {
      const req = httpRequest(served.url, (res) => {
        let cut = false;
        res.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (!cut) res.pause();
        });
        res.once('close', () => resolve());
        void outcomeOf(served, 0).then(() => {
          cut = true;
          res.resume();
        });
      });
      req.once('error', () => resolve());
      req.end();
    });
    const stalled = await outcomeOf(served, 0);
    const cutAfterMs = Date.now() - started;
    assert.ok(!(stalled instanceof Error) && stalled.kind === 'client-gone', JSON.stringify(stalled));
    assert.ok(cutAfterMs >= 400 && cutAfterMs < 5000, `cut after ${cutAfterMs} ms`);
    await clientClosed;
    assert.ok(received < bytes.length, `the client got ${received} of ${bytes.length} bytes, then the close`);
    // Steady: pauses of 250 ms (under the 400 ms limit) between reads.
    received = 0;
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(served.url, (res) => {
        res.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received % (8 * MiB) < chunk.length) {
            res.pause();
            setTimeout(() => res.resume(), 250);
          }
        });
        res.once('end', () => resolve());
        res.once('error', reject);
      });
      req.once('error', reject);
      req.end();
    });
    assert.equal(received, bytes.length);
    assert.deepEqual(await outcomeOf(served, 1), { kind: 'complete', bytesSent: bytes.length });
  });
});

describe('the addon checks its arguments', () => {
  test('wrong arguments throw a message naming the argument', () => {
    const done = (): void => {};
    assert.throws(() => addon.send({ socketFd: -1, fileFd: 0, offset: 0, count: 1, idleMs: 0 }, done), /socketFd must be a descriptor/);
    assert.throws(() => addon.send({ socketFd: 0, fileFd: -1, offset: 0, count: 1, idleMs: 0 }, done), /fileFd must be a descriptor/);
    assert.throws(() => addon.send({ socketFd: 0, fileFd: 0, offset: -5, count: 1, idleMs: 0 }, done), /offset must be a byte offset/);
    assert.throws(() => addon.send({ socketFd: 0, fileFd: 0, offset: 0, count: 0, idleMs: 0 }, done), /count must be a positive byte count/);
    assert.throws(() => addon.send({ socketFd: 0, fileFd: 0, offset: 0, count: 1, idleMs: Number.NaN }, done), /idleMs must be milliseconds/);
    assert.throws(() => addon.cancel({}), /want a handle from send/);
  });
});
