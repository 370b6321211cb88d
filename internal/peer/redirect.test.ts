// Redirects of the peer source (redirect-path.ts, redirects.ts, blob-path.ts):
// a redirectable GET of a large blob that a peer holds is answered with a
// signed URL to that peer (found with a HEAD, no byte of the body moved here);
// asked again soon after, the blob is streamed and verified, that holder last;
// small blobs, plain GETs and HEADs are streamed or HEADed as before. Plain
// HTTP servers on 127.0.0.1 play the holders; one test follows the redirect
// from a real registry app to a real holder app.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, it, type TestContext } from 'node:test';
import { createRedirectSigner, createRedirectVerifier } from '../auth/redirect.ts';
import { chainSources, storeSource, type ContentRequest, type LocatedContent } from '../content/source.ts';
import { createLogger } from '../log/logger.ts';
import { createMemoryStore } from '../oci/storetest/memory-store.ts';
import { NotFoundError } from '../oci/store.ts';
import { createRegistryApp } from '../registry/app.ts';
import { captureLog, listen, type CapturedLog } from '../../tests/support/registry/testkit.ts';
import { startFakePeer, type FakePeer } from '../../tests/support/peer/testkit.ts';
import type { Candidate } from './client.ts';
import { createRedirects, redirectedLately, rememberRedirect, REDIRECT_MEMORY_MS } from './redirects.ts';
import { createPeerSource, type PeerSource, type PeerSourceOptions } from './source.ts';

const KEY = Buffer.from('a-shared-secret-of-32-characters');
const SELF = 'mirra-self';
const MIN_BYTES = 64 * 1024;
const LARGE_BYTES = 300_000;
const SMALL_BYTES = 1000;
const REDIRECT: ContentRequest = { registry: 'docker.io', name: 'library/app', kind: 'blob', method: 'GET', redirectable: true };

const digestOf = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const blobTarget = (digest: string, extra = ''): string => `/v2/library/app/blobs/${digest}?ns=docker.io${extra}`;

/** The blob whose digest ends the request path, else undefined. */
function blobAsked(req: IncomingMessage, blobs: ReadonlyMap<string, Buffer>): Buffer | undefined {
  const path = (req.url ?? '').split('?')[0] ?? '';
  return blobs.get(path.slice(path.lastIndexOf('/') + 1));
}

/** A holder's agent: HEAD and GET (whole) of the blobs it has, 404 for the rest; `wrong` sends other bytes of the same length. */
function holderOf(blobs: ReadonlyMap<string, Buffer>, wrong = false): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const bytes = blobAsked(req, blobs);
    if (bytes === undefined) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown","detail":null}]}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) });
    res.end(req.method === 'HEAD' ? undefined : wrong ? randomBytes(bytes.length) : bytes);
  };
}

/** A holder named `name` of the given blobs. */
function startHolder(t: TestContext, name: string, blobs: Buffer[], wrong = false): Promise<FakePeer> {
  return startFakePeer(t, name, holderOf(new Map(blobs.map((bytes) => [digestOf(bytes), bytes])), wrong));
}

/** A peer source with redirects of blobs of MIN_BYTES or more, whose candidates for any key are `holders` (in that order). */
function redirectingSource(t: TestContext, holders: readonly Candidate[], extra: Partial<PeerSourceOptions> = {}): { source: PeerSource; log: CapturedLog } {
  const log = captureLog();
  const source = createPeerSource({
    candidates: () => holders,
    logger: createLogger('debug', log),
    resolveTags: true,
    // No hedge within a test: the first candidate answers.
    hedge: { minDelayMs: 2000, maxDelayMs: 2000 },
    requestTimeoutMs: 1000,
    idleTimeoutMs: 500,
    redirect: { minBytes: MIN_BYTES, sign: createRedirectSigner({ key: KEY, self: SELF }) },
    ...extra,
  });
  t.after(() => source.close());
  return { source, log };
}

async function readAll(located: LocatedContent): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await located.read()) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

/** The methods a fake peer was asked, in order. */
const methods = (peer: FakePeer): string[] => peer.asked.map((asked) => asked.method);

/** The request target of a redirect at `holder` (its location without the origin). */
function targetAt(holder: FakePeer, location: string): string {
  assert.ok(location.startsWith(holder.candidate.url), `${location} goes to ${holder.candidate.url}`);
  return location.slice(holder.candidate.url.length);
}

/** A located redirect (fails the test when it is not one). */
function redirectOf(located: LocatedContent | undefined): NonNullable<LocatedContent['redirect']> {
  assert.ok(located !== undefined, 'located');
  assert.ok(located.redirect !== undefined, 'a redirect');
  return located.redirect;
}

describe('peer source redirects: a large blob goes to its holder', () => {
  it('a redirectable GET of a large blob: a signed location at the holder, found with a HEAD only, counted once taken', async (t) => {
    const bytes = randomBytes(LARGE_BYTES);
    const digest = digestOf(bytes);
    const holder = await startHolder(t, 'holder-a', [bytes]);
    const { source } = redirectingSource(t, [holder.candidate]);
    const located = await source.locate(REDIRECT, digest);
    const redirect = redirectOf(located);
    assert.equal(located?.peer, 'holder-a');
    assert.equal(located?.source, 'peer');
    assert.deepEqual(located?.info, { digest, size: LARGE_BYTES });
    const target = targetAt(holder, redirect.location);
    assert.match(target, /^\/v2\/library\/app\/blobs\/sha256:[0-9a-f]{64}\?ns=docker\.io&mirra-from=mirra-self&mirra-expires=[0-9]+&mirra-sig=[0-9a-f]{64}$/);
    assert.ok(target.startsWith(blobTarget(digest, '&')));
    assert.deepEqual(createRedirectVerifier({ keys: [KEY], audience: 'holder-a' }).verify(target), { ok: true, peer: SELF });
    assert.equal(createRedirectVerifier({ keys: [KEY], audience: 'holder-b' }).verify(target).ok, false, 'good at its holder only');
    assert.deepEqual(holder.asked, [{ method: 'HEAD', url: blobTarget(digest), peerMarker: '1' }], 'no GET of the body');
    assert.equal(source.stats().redirects, 0, 'not counted before the registry takes it');
    redirect.taken();
    located?.release?.();
    assert.equal(source.stats().redirects, 1);
    assert.equal(source.stats().redirectsAskedAgain, 0);
    assert.equal(source.stats().hits, 1);
  });

  it('a redirect the registry does not take is not remembered, and read() streams the blob instead', async (t) => {
    const bytes = randomBytes(LARGE_BYTES);
    const digest = digestOf(bytes);
    const holder = await startHolder(t, 'holder-a', [bytes]);
    const { source } = redirectingSource(t, [holder.candidate]);
    const first = await source.locate(REDIRECT, digest);
    redirectOf(first);
    assert.ok(first !== undefined);
    assert.ok((await readAll(first)).equals(bytes));
    first.release?.();
    const again = await source.locate(REDIRECT, digest);
    redirectOf(again);
    again?.release?.();
    assert.deepEqual(methods(holder), ['HEAD', 'GET', 'HEAD']);
    assert.equal(source.stats().redirects, 0);
    assert.equal(source.stats().redirectsAskedAgain, 0);
  });

  it('the same digest asked again within the memory: streamed and verified, not redirected, counted as asked again', async (t) => {
    const bytes = randomBytes(LARGE_BYTES);
    const digest = digestOf(bytes);
    const holder = await startHolder(t, 'holder-a', [bytes]);
    const { source } = redirectingSource(t, [holder.candidate]);
    redirectOf(await source.locate(REDIRECT, digest)).taken();
    const again = await source.locate(REDIRECT, digest);
    assert.ok(again !== undefined);
    assert.equal(again.redirect, undefined);
    assert.equal(again.wholeOnly, true, 'the verified peer stream');
    assert.ok((await readAll(again)).equals(bytes));
    again.release?.();
    assert.deepEqual(methods(holder), ['HEAD', 'GET']);
    assert.equal(source.stats().redirects, 1);
    assert.equal(source.stats().redirectsAskedAgain, 1);
  });

  it('asked again with two holders: the one redirected to before is asked last', async (t) => {
    const bytes = randomBytes(LARGE_BYTES);
    const digest = digestOf(bytes);
    const first = await startHolder(t, 'holder-a', [bytes]);
    const second = await startHolder(t, 'holder-b', [bytes]);
    const { source } = redirectingSource(t, [first.candidate, second.candidate]);
    const redirect = redirectOf(await source.locate(REDIRECT, digest));
    targetAt(first, redirect.location);
    redirect.taken();
    const again = await source.locate(REDIRECT, digest);
    assert.ok(again !== undefined);
    assert.equal(again.peer, 'holder-b');
    assert.ok((await readAll(again)).equals(bytes));
    again.release?.();
    assert.deepEqual(methods(first), ['HEAD'], 'the holder redirected to was not asked again');
    assert.deepEqual(methods(second), ['GET']);
    assert.equal(source.stats().redirectsAskedAgain, 1);
  });

  it('asked again: the stream is verified (a holder sending wrong bytes fails the read, counted as a mismatch)', async (t) => {
    const bytes = randomBytes(LARGE_BYTES);
    const digest = digestOf(bytes);
    const holder = await startHolder(t, 'holder-a', [bytes], true);
    const { source } = redirectingSource(t, [holder.candidate]);
    redirectOf(await source.locate(REDIRECT, digest)).taken();
    const again = await source.locate(REDIRECT, digest);
    assert.ok(again !== undefined);
    // Held whole until checked: the mismatch, with no other holder to resume from, is "not found" (containerd goes upstream).
    await assert.rejects(readAll(again), NotFoundError);
    again.release?.();
    assert.equal(source.stats().digestMismatches, 1);
    assert.equal(source.stats().redirectsAskedAgain, 1);
  });

  it('a blob below minBytes is streamed (after the HEAD that sized it), with the right bytes', async (t) => {
    const bytes = randomBytes(SMALL_BYTES);
    const digest = digestOf(bytes);
    const holder = await startHolder(t, 'holder-a', [bytes]);
    const { source } = redirectingSource(t, [holder.candidate]);
    const located = await source.locate(REDIRECT, digest);
    assert.ok(located !== undefined);
    assert.equal(located.redirect, undefined);
    assert.deepEqual(located.info, { digest, size: SMALL_BYTES });
    assert.ok((await readAll(located)).equals(bytes));
    located.release?.();
    assert.deepEqual(methods(holder), ['HEAD', 'GET']);
    assert.equal(source.stats().redirects, 0);
  });

  it('a blob of exactly minBytes is redirected', async (t) => {
    const bytes = randomBytes(MIN_BYTES);
    const holder = await startHolder(t, 'holder-a', [bytes]);
    const { source } = redirectingSource(t, [holder.candidate]);
    const located = await source.locate(REDIRECT, digestOf(bytes));
    redirectOf(located);
    located?.release?.();
  });

  it('a GET that is not redirectable (false or not said), and a HEAD: no redirect', async (t) => {
    const bytes = randomBytes(LARGE_BYTES);
    const digest = digestOf(bytes);
    const holder = await startHolder(t, 'holder-a', [bytes]);
    const { source } = redirectingSource(t, [holder.candidate]);
    for (const redirectable of [false, undefined]) {
      const located = await source.locate({ ...REDIRECT, redirectable }, digest);
      assert.ok(located !== undefined);
      assert.equal(located.redirect, undefined, String(redirectable));
      assert.ok((await readAll(located)).equals(bytes));
      located.release?.();
    }
    const head = await source.locate({ ...REDIRECT, method: 'HEAD' }, digest);
    assert.ok(head !== undefined);
    assert.equal(head.redirect, undefined);
    assert.equal(head.info.size, LARGE_BYTES);
    head.release?.();
    assert.deepEqual(methods(holder), ['GET', 'GET', 'HEAD']);
    assert.equal(source.stats().redirects, 0);
  });

  it('a source without redirect settings streams a redirectable GET', async (t) => {
    const bytes = randomBytes(LARGE_BYTES);
    const holder = await startHolder(t, 'holder-a', [bytes]);
    const { source } = redirectingSource(t, [holder.candidate], { redirect: undefined });
    const located = await source.locate(REDIRECT, digestOf(bytes));
    assert.ok(located !== undefined);
    assert.equal(located.redirect, undefined);
    assert.ok((await readAll(located)).equals(bytes));
    located.release?.();
    assert.deepEqual(methods(holder), ['GET']);
  });

  it('no candidate has it (404s), or there is none: undefined', async (t) => {
    const digest = digestOf(randomBytes(LARGE_BYTES));
    const a = await startHolder(t, 'holder-a', []);
    const b = await startHolder(t, 'holder-b', []);
    const { source } = redirectingSource(t, [a.candidate, b.candidate]);
    assert.equal(await source.locate(REDIRECT, digest), undefined);
    assert.deepEqual([...methods(a), ...methods(b)], ['HEAD', 'HEAD']);
    assert.equal(source.stats().misses, 2);
    const { source: lonely } = redirectingSource(t, []);
    assert.equal(await lonely.locate(REDIRECT, digest), undefined);
    assert.equal(lonely.stats().noCandidates, 1);
  });

  it('a verified pull: mirra-verified=1 is in the signed part of the location (and asked of the holder with it)', async (t) => {
    const bytes = randomBytes(LARGE_BYTES);
    const digest = digestOf(bytes);
    const holder = await startHolder(t, 'holder-a', [bytes]);
    const { source } = redirectingSource(t, [holder.candidate]);
    const redirect = redirectOf(await source.locate({ ...REDIRECT, verified: true }, digest));
    const target = targetAt(holder, redirect.location);
    assert.ok(target.startsWith(`${blobTarget(digest, '&mirra-verified=1')}&mirra-from=mirra-self&`), target);
    const verifier = createRedirectVerifier({ keys: [KEY], audience: 'holder-a' });
    assert.deepEqual(verifier.verify(target), { ok: true, peer: SELF });
    assert.deepEqual(verifier.verify(target.replace('&mirra-verified=1', '')), { ok: false, reason: 'bad signature' });
    assert.deepEqual(holder.asked, [{ method: 'HEAD', url: blobTarget(digest, '&mirra-verified=1'), peerMarker: '1' }]);
  });
});

describe('redirect memory (redirects.ts)', () => {
  const settings = { minBytes: MIN_BYTES, sign: createRedirectSigner({ key: KEY, self: SELF }) };
  const digestNo = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;

  it('remembers a redirect for REDIRECT_MEMORY_MS (inclusive), then forgets it', () => {
    let now = 1_000_000;
    const redirects = createRedirects(settings, () => now);
    rememberRedirect(redirects, digestNo(1), 'holder-a');
    assert.deepEqual(redirectedLately(redirects, digestNo(1)), { peer: 'holder-a', untilMs: 1_000_000 + REDIRECT_MEMORY_MS });
    assert.equal(redirectedLately(redirects, digestNo(2)), undefined);
    now += REDIRECT_MEMORY_MS;
    assert.equal(redirectedLately(redirects, digestNo(1))?.peer, 'holder-a');
    now += 1;
    assert.equal(redirectedLately(redirects, digestNo(1)), undefined);
    assert.equal(redirects.recent.size, 0, 'the expired entry is dropped');
  });

  it('remembering again moves the digest to the newest, with the new holder and a new expiry', () => {
    let now = 0;
    const redirects = createRedirects(settings, () => now);
    rememberRedirect(redirects, digestNo(1), 'holder-a');
    rememberRedirect(redirects, digestNo(2), 'holder-a');
    now = 1000;
    rememberRedirect(redirects, digestNo(1), 'holder-b');
    assert.deepEqual([...redirects.recent.keys()], [digestNo(2), digestNo(1)]);
    assert.deepEqual(redirectedLately(redirects, digestNo(1)), { peer: 'holder-b', untilMs: 1000 + REDIRECT_MEMORY_MS });
  });

  it('is bounded: beyond 4096 digests the oldest is dropped', () => {
    let now = 0;
    const redirects = createRedirects(settings, () => now);
    for (let n = 0; n < 4096; n++) rememberRedirect(redirects, digestNo(n), 'holder-a');
    assert.equal(redirects.recent.size, 4096);
    now = 10;
    rememberRedirect(redirects, digestNo(4096), 'holder-a');
    assert.equal(redirects.recent.size, 4096);
    assert.equal(redirectedLately(redirects, digestNo(0)), undefined, 'the oldest went');
    assert.equal(redirectedLately(redirects, digestNo(1))?.peer, 'holder-a');
    assert.equal(redirectedLately(redirects, digestNo(4096))?.peer, 'holder-a');
  });

  it('when full, the expired are dropped first, all of them', () => {
    let now = 0;
    const redirects = createRedirects(settings, () => now);
    for (let n = 0; n < 4000; n++) rememberRedirect(redirects, digestNo(n), 'holder-a');
    now = REDIRECT_MEMORY_MS / 2;
    for (let n = 4000; n < 4096; n++) rememberRedirect(redirects, digestNo(n), 'holder-a');
    now = REDIRECT_MEMORY_MS + 1;
    rememberRedirect(redirects, digestNo(5000), 'holder-b');
    assert.equal(redirects.recent.size, 97, 'the 4000 expired went, the 96 still fresh and the new one stayed');
    assert.equal(redirectedLately(redirects, digestNo(4000))?.peer, 'holder-a');
    assert.equal(redirectedLately(redirects, digestNo(5000))?.peer, 'holder-b');
  });
});

describe('a redirect followed end to end (real registry apps)', () => {
  it('the pulling agent answers 307, the holder serves the blob from its own store as a peer request; asked again, streamed', async (t) => {
    const bytes = randomBytes(LARGE_BYTES);
    const holderLog = captureLog();
    const holderStore = createMemoryStore();
    const digest = holderStore.put(bytes);
    const holderApp = createRegistryApp({
      store: holderStore,
      logger: createLogger('info', holderLog),
      mirroredRegistries: [],
      resolveTags: true,
      redirectVerifier: createRedirectVerifier({ keys: [KEY], audience: 'holder-a', nowMs: Date.now }),
    });
    t.after(() => holderApp.close());
    const holder: Candidate = { name: 'holder-a', url: await listen(holderApp) };
    const { source } = redirectingSource(t, [holder]);
    const local = createMemoryStore();
    const app = createRegistryApp({
      store: local,
      logger: createLogger('info', captureLog()),
      mirroredRegistries: [],
      resolveTags: true,
      source: chainSources([storeSource(local), source]),
    });
    t.after(() => app.close());
    const url = `${await listen(app)}${blobTarget(digest)}`;

    const manual = await fetch(url, { redirect: 'manual' });
    assert.equal(manual.status, 307);
    const location = manual.headers.get('location') ?? '';
    assert.ok(location.startsWith(`${holder.url}${blobTarget(digest, '&mirra-from=mirra-self&mirra-expires=')}`), location);
    const followed = await fetch(location);
    assert.equal(followed.status, 200);
    assert.ok(Buffer.from(await followed.arrayBuffer()).equals(bytes));
    const served = holderLog.lines.filter((line) => line.msg === 'request').map((line) => [line.method, line.status, line.fromPeer]);
    assert.deepEqual(served, [
      ['HEAD', 200, true],
      ['GET', 200, true],
    ]);

    const again = await fetch(url);
    assert.equal(again.redirected, false, 'asked again within the memory: streamed through the agent');
    assert.equal(again.status, 200);
    assert.ok(Buffer.from(await again.arrayBuffer()).equals(bytes));
    assert.equal(source.stats().redirects, 1);
    assert.equal(source.stats().redirectsAskedAgain, 1);
  });
});
