// The private upstream for issue 15 against the real components: the token
// service (token-service.ts) as the realm of a docker-registry with
// `auth: token` (upstream.ts tokenAuth), what the registry accepts and
// refuses, and a real containerd pulling through its CRI plugin with and
// without a pull secret's credentials (cri.ts), straight from the registry.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isRecord } from '../../internal/json/narrow.ts';
import { startContainerd, type TestContainerd } from './containerd.ts';
import { criPull } from './cri.ts';
import { writeUpstreamHosts } from './hosts.ts';
import { generateImage, type GeneratedImage } from './image.ts';
import { decodeJwt, startTokenService, tokenAccess, type TokenRequest, type TokenService } from './token-service.ts';
import { startUpstream, type Upstream } from './upstream.ts';

const KiB = 1024;
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
const ALICE = { username: 'alice', password: 'alice-secret' };
const BOB = { username: 'bob', password: 'bob-secret' };
const USERS = {
  alice: { password: ALICE.password, pull: ['team/*'], push: ['team/*'] },
  bob: { password: BOB.password, pull: ['other/app'] },
};
const PULL_APP = [{ type: 'repository', name: 'team/app', actions: ['pull'] }];

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const basic = (user: { username: string; password: string }): string => `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}`;

/** GET <realm>?service&scope... with optional Basic credentials; the token when one came back. */
async function askToken(
  tokens: TokenService,
  request: { scopes: string[]; user?: { username: string; password: string } },
): Promise<{ status: number; body: unknown; headers: Headers; token: string | undefined }> {
  const query = new URLSearchParams({ service: tokens.service });
  for (const scope of request.scopes) query.append('scope', scope);
  const headers = request.user === undefined ? {} : { authorization: basic(request.user) };
  const res = await fetch(`${tokens.realm}?${query.toString()}`, { headers });
  const body: unknown = await res.json();
  const token = isRecord(body) && typeof body.token === 'string' ? body.token : undefined;
  return { status: res.status, body, headers: res.headers, token };
}

/** A registry request with `Authorization: Bearer <token>` (none when token is undefined). */
async function registry(url: string, token: string | undefined, method = 'GET'): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const headers: Record<string, string> = { accept: ACCEPT };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await fetch(url, { method, headers });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** The token requests as [method, user, status] for compact assertions. */
function summary(requests: readonly TokenRequest[]): Array<[string, string | undefined, number]> {
  return requests.map((r) => [r.method, r.user, r.status]);
}

describe('private upstream: docker-registry with token auth', { timeout: 120_000 }, () => {
  let workDir = '';
  let tokens: TokenService;
  let upstream: Upstream;
  let image: GeneratedImage;
  let manifestUrl = '';
  let challenge = '';

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'mirra-token-test-'));
    await mkdir(join(workDir, 'tokens'));
    [tokens, image] = await Promise.all([
      startTokenService({ dir: join(workDir, 'tokens'), users: USERS }),
      generateImage({ dir: join(workDir, 'image'), layers: [64 * KiB, 3 * KiB], seed: 'token-auth' }),
    ]);
    upstream = await startUpstream({ dir: join(workDir, 'upstream'), tokenAuth: tokens.registryAuth });
    manifestUrl = `http://${upstream.host}/v2/team/app/manifests/v1`;
    challenge = `Bearer realm="${tokens.realm}",service="${tokens.service}"`;
  });
  after(async () => {
    await upstream?.stop();
    await tokens?.stop();
    await rm(workDir, { recursive: true, force: true });
  });

  it('takes a push with the credentials of a user with push access, and refuses an anonymous one', async () => {
    tokens.resetRequests();
    assert.equal(await upstream.push(image.layoutDir, 'team/app', 'v1', { credentials: ALICE }), image.manifestDigest);
    const pushes = tokens.requests().filter((r) => r.user === 'alice' && r.status === 200);
    assert.ok(
      pushes.some((r) => r.granted.some((g) => g.name === 'team/app' && g.actions.includes('push'))),
      JSON.stringify(tokens.requests()),
    );
    await assert.rejects(upstream.push(image.layoutDir, 'team/anonymous', 'v1'), /skopeo copy/);
    await assert.rejects(upstream.push(image.layoutDir, 'other/app', 'v1', { credentials: BOB }), /skopeo copy/);
  });

  it('challenges an anonymous request with the realm, the service and the scope', async () => {
    const manifest = await registry(manifestUrl, undefined);
    assert.equal(manifest.status, 401);
    assert.equal(manifest.headers.get('www-authenticate'), `${challenge},scope="repository:team/app:pull"`);
    const body: unknown = JSON.parse(manifest.body.toString('utf8'));
    assert.ok(isRecord(body) && Array.isArray(body.errors));
    assert.equal(isRecord(body.errors[0]) ? body.errors[0].code : undefined, 'UNAUTHORIZED');
    const head = await registry(manifestUrl, undefined, 'HEAD');
    assert.equal(head.status, 401);
    assert.equal(head.headers.get('www-authenticate'), `${challenge},scope="repository:team/app:pull"`);
    const base = await registry(`http://${upstream.host}/v2/`, undefined);
    assert.equal(base.status, 401);
    assert.equal(base.headers.get('www-authenticate'), challenge, '/v2/ asks for a token without a scope');
  });

  it('serves the manifest and the blobs with a token from good credentials', async () => {
    tokens.resetRequests();
    const answer = await askToken(tokens, { scopes: ['repository:team/app:pull'], user: ALICE });
    assert.equal(answer.status, 200);
    assert.ok(isRecord(answer.body) && answer.token !== undefined);
    assert.equal(answer.body.access_token, answer.token);
    assert.equal(answer.body.expires_in, 300);
    assert.ok(typeof answer.body.issued_at === 'string' && Math.abs(Date.parse(answer.body.issued_at) - Date.now()) < 10_000);
    const { header, claims } = decodeJwt(answer.token);
    assert.ok(isRecord(header) && isRecord(claims));
    assert.equal(header.alg, 'RS256');
    assert.ok(Array.isArray(header.x5c) && header.x5c.length === 1);
    assert.equal(claims.iss, tokens.issuer);
    assert.equal(claims.aud, tokens.service);
    assert.equal(claims.sub, 'alice');
    assert.ok(typeof claims.exp === 'number' && typeof claims.iat === 'number' && claims.exp - claims.iat === 300);
    assert.deepEqual(tokenAccess(answer.token), PULL_APP);
    assert.deepEqual(summary(tokens.requests()), [['GET', 'alice', 200]]);
    assert.deepEqual(tokens.requests()[0]?.scopes, ['repository:team/app:pull']);

    const head = await registry(manifestUrl, answer.token, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('docker-content-digest'), image.manifestDigest);
    const manifest = await registry(manifestUrl, answer.token);
    assert.equal(manifest.status, 200);
    assert.equal(sha256(manifest.body), image.manifestDigest);
    const config = await registry(`http://${upstream.host}/v2/team/app/blobs/${image.configDigest}`, answer.token);
    assert.equal(config.status, 200);
    assert.equal(sha256(config.body), image.configDigest);
  });

  it('gives an anonymous request a token that allows nothing, which the registry refuses', async () => {
    tokens.resetRequests();
    const answer = await askToken(tokens, { scopes: ['repository:team/app:pull'] });
    assert.equal(answer.status, 200);
    assert.ok(answer.token !== undefined);
    assert.deepEqual(tokenAccess(answer.token), []);
    assert.deepEqual(summary(tokens.requests()), [['GET', undefined, 200]]);
    const manifest = await registry(manifestUrl, answer.token);
    assert.equal(manifest.status, 401);
    assert.equal(manifest.headers.get('www-authenticate'), `${challenge},scope="repository:team/app:pull",error="insufficient_scope"`);
  });

  it('gives a user without access to the repository a token without access: 401 at the registry', async () => {
    const answer = await askToken(tokens, { scopes: ['repository:team/app:pull'], user: BOB });
    assert.equal(answer.status, 200);
    assert.ok(answer.token !== undefined);
    assert.deepEqual(tokenAccess(answer.token), []);
    const manifest = await registry(manifestUrl, answer.token);
    assert.equal(manifest.status, 401);
    assert.match(manifest.headers.get('www-authenticate') ?? '', /error="insufficient_scope"$/);
  });

  it('grants per scope what the user may do, over several scope params', async () => {
    const alice = await askToken(tokens, { scopes: ['repository:team/app:pull,push', 'repository:other/app:pull', 'registry:catalog:*'], user: ALICE });
    assert.ok(alice.token !== undefined);
    assert.deepEqual(tokenAccess(alice.token), [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }]);
    const bob = await askToken(tokens, { scopes: ['repository:other/app:pull,push', 'repository:team/app:pull'], user: BOB });
    assert.ok(bob.token !== undefined);
    assert.deepEqual(tokenAccess(bob.token), [{ type: 'repository', name: 'other/app', actions: ['pull'] }]);
  });

  it('answers 401 with a Basic challenge to a wrong password or an unknown user', async () => {
    tokens.resetRequests();
    const wrong = await askToken(tokens, { scopes: ['repository:team/app:pull'], user: { username: 'alice', password: 'nope' } });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.token, undefined);
    assert.equal(wrong.headers.get('www-authenticate'), `Basic realm="${tokens.realm}"`);
    const unknown = await askToken(tokens, { scopes: ['repository:team/app:pull'], user: { username: 'mallory', password: 'x' } });
    assert.equal(unknown.status, 401);
    const malformed = await fetch(`${tokens.realm}?service=${tokens.service}`, { headers: { authorization: 'Basic not-base64-pair' } });
    assert.equal(malformed.status, 401);
    await malformed.body?.cancel();
    assert.deepEqual(summary(tokens.requests()), [
      ['GET', 'alice', 401],
      ['GET', 'mallory', 401],
      ['GET', undefined, 401],
    ]);
  });

  it('refuses a token expired beyond the 60 s leeway, and takes one expired within it', async () => {
    const expired = await registry(manifestUrl, tokens.mint({ subject: 'alice', access: PULL_APP, expiresInSec: -90 }));
    assert.equal(expired.status, 401);
    assert.match(expired.headers.get('www-authenticate') ?? '', /error="invalid_token"$/);
    const lenient = await registry(manifestUrl, tokens.mint({ subject: 'alice', access: PULL_APP, expiresInSec: -20 }));
    assert.equal(lenient.status, 200);
  });

  it('refuses a token not valid yet (beyond the leeway), for another audience or from another issuer', async () => {
    for (const options of [{ notBeforeSec: 120 }, { audience: 'another-registry' }, { issuer: 'another-issuer' }]) {
      const res = await registry(manifestUrl, tokens.mint({ subject: 'alice', access: PULL_APP, ...options }));
      assert.equal(res.status, 401, JSON.stringify(options));
      assert.match(res.headers.get('www-authenticate') ?? '', /error="invalid_token"$/, JSON.stringify(options));
    }
    assert.equal((await registry(manifestUrl, tokens.mint({ subject: 'alice', access: PULL_APP }))).status, 200, 'the same token, minted right');
  });

  it('refuses a forged token: signed by a key whose certificate is not in the bundle', async () => {
    const forged = tokens.mintForged({ subject: 'alice', access: PULL_APP });
    assert.deepEqual(tokenAccess(forged), PULL_APP);
    const res = await registry(manifestUrl, forged);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /error="invalid_token"$/);
  });

  it('answers the OAuth2 password grant (POST) as containerd asks first', async () => {
    tokens.resetRequests();
    const post = (form: Record<string, string>): Promise<Response> =>
      fetch(tokens.realm, { method: 'POST', body: new URLSearchParams({ service: tokens.service, scope: 'repository:team/app:pull', ...form }) });
    const good = await post({ grant_type: 'password', username: ALICE.username, password: ALICE.password, client_id: 'test' });
    assert.equal(good.status, 200);
    const body: unknown = await good.json();
    assert.ok(isRecord(body) && typeof body.access_token === 'string');
    assert.deepEqual(tokenAccess(body.access_token), PULL_APP);
    assert.equal((await registry(manifestUrl, body.access_token, 'HEAD')).status, 200);
    const wrong = await post({ grant_type: 'password', username: ALICE.username, password: 'nope' });
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    const refresh = await post({ grant_type: 'refresh_token', refresh_token: 'x' });
    assert.equal(refresh.status, 400);
    await refresh.body?.cancel();
    assert.deepEqual(summary(tokens.requests()), [
      ['POST', 'alice', 200],
      ['POST', 'alice', 401],
      ['POST', undefined, 400],
    ]);
    assert.equal(tokens.requests()[0]?.clientId, 'test');
  });

  describe('containerd pulling through the CRI, straight from the private registry', () => {
    let ctd: TestContainerd;
    let ref = '';

    before(async () => {
      const hostsDir = join(workDir, 'hosts');
      await writeUpstreamHosts(hostsDir, upstream.host);
      ctd = await startContainerd({ dir: join(workDir, 'containerd'), cri: { hostsDir } });
      ref = `${upstream.host}/team/app:v1`;
    });
    after(async () => {
      await ctd?.stop();
    });

    it('fails without credentials, after fetching an anonymous token and presenting it once', async () => {
      tokens.resetRequests();
      upstream.resetCounts();
      await assert.rejects(criPull(ctd.socket, ref, { timeoutMs: 60_000 }), /insufficient_scope/);
      const requests = tokens.requests();
      assert.deepEqual(summary(requests), [['GET', undefined, 200]], JSON.stringify(requests));
      assert.deepEqual(requests[0]?.scopes, ['repository:team/app:pull']);
      assert.equal(requests[0]?.service, tokens.service);
      assert.deepEqual(requests[0]?.granted, []);
      assert.deepEqual(
        upstream.counts().requests.map((r) => [r.method, r.path, r.status]),
        [
          ['HEAD', '/v2/team/app/manifests/v1', 401],
          ['HEAD', '/v2/team/app/manifests/v1', 401],
        ],
      );
    });

    it('fails with a wrong password or a user without access', async () => {
      tokens.resetRequests();
      await assert.rejects(criPull(ctd.socket, ref, { timeoutMs: 60_000, credentials: { ...ALICE, password: 'nope' } }), /401 Unauthorized/);
      // containerd POSTs the password grant first; on the 401 it retries with GET and Basic credentials, then gives up.
      assert.deepEqual(summary(tokens.requests()), [
        ['POST', 'alice', 401],
        ['GET', 'alice', 401],
      ]);
      tokens.resetRequests();
      await assert.rejects(criPull(ctd.socket, ref, { timeoutMs: 60_000, credentials: BOB }), /insufficient_scope/);
      assert.deepEqual(summary(tokens.requests()), [['POST', 'bob', 200]]);
      assert.deepEqual(tokens.requests()[0]?.granted, []);
    });

    it('pulls with the credentials of a user with access, getting its token from the realm itself', async () => {
      tokens.resetRequests();
      upstream.resetCounts();
      const id = await criPull(ctd.socket, ref, { timeoutMs: 120_000, credentials: ALICE });
      assert.equal(id, image.configDigest);
      const requests = tokens.requests();
      const pulls = upstream.counts().requests;
      const trace = JSON.stringify({ tokens: summary(requests), registry: pulls.map((r) => [r.method, r.url, r.status]) });
      // Each 401 costs one token request, and the request is retried with the token at once. On 2.1 that is twice:
      // the resolve (HEAD by tag) and the fetch (GET by digest) do not share cached tokens.
      const challenged = pulls.filter((r) => r.status === 401);
      assert.ok(challenged.length >= 1 && requests.length === challenged.length, trace);
      for (const request of requests) {
        assert.deepEqual(
          [request.method, request.user, request.status, request.grantType, request.clientId],
          ['POST', 'alice', 200, 'password', 'containerd-client'],
        );
        assert.deepEqual(request.granted, PULL_APP);
      }
      assert.deepEqual([pulls[0]?.method, pulls[0]?.kind, pulls[0]?.status], ['HEAD', 'manifest', 401], 'the first request carries no credentials');
      for (const [index, request] of pulls.entries()) {
        const next = pulls[index + 1];
        if (request.status === 401) assert.deepEqual([next?.method, next?.url, next?.status], [request.method, request.url, 200], trace);
        else assert.equal(request.status, 200, trace);
      }
      assert.equal(upstream.counts().blobGets, 1 + image.layers.length, trace);
    });
  });
});

describe('token service options', () => {
  it('names its issuer and service, issues tokens of the given lifetime, and can refuse the OAuth2 POST', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mirra-token-options-'));
    const tokens = await startTokenService({ dir, users: USERS, lifetimeSec: 30, issuer: 'issuer-x', service: 'service-y', oauthPost: false });
    try {
      assert.deepEqual(tokens.registryAuth, {
        realm: tokens.realm,
        service: 'service-y',
        issuer: 'issuer-x',
        rootCertBundlePath: join(dir, 'token-signer.crt'),
      });
      const answer = await askToken(tokens, { scopes: ['repository:team/app:pull'], user: ALICE });
      assert.ok(isRecord(answer.body) && answer.token !== undefined);
      assert.equal(answer.body.expires_in, 30);
      const { claims } = decodeJwt(answer.token);
      assert.ok(isRecord(claims) && typeof claims.exp === 'number' && typeof claims.iat === 'number');
      assert.deepEqual([claims.iss, claims.aud, claims.exp - claims.iat], ['issuer-x', 'service-y', 30]);
      const other = await fetch(`${tokens.realm}?service=another`, { headers: { authorization: basic(ALICE) } });
      assert.equal(other.status, 400);
      await other.body?.cancel();
      const post = await fetch(tokens.realm, {
        method: 'POST',
        body: new URLSearchParams({ grant_type: 'password', username: 'alice', password: ALICE.password }),
      });
      assert.equal(post.status, 404);
      await post.body?.cancel();
      assert.deepEqual(summary(tokens.requests()), [
        ['GET', 'alice', 200],
        ['GET', 'alice', 400],
        ['POST', undefined, 404],
      ]);
    } finally {
      await tokens.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
