// The pull gate against a real private registry: docker-registry with token
// authentication and the test token service (tests/support/token-service.ts),
// beside a public docker-registry. The gate must hand out the private
// registry's own challenge for the asked repository, allow a token that may
// pull the repository and nothing else (another repository's, anonymous,
// expired, forged, Basic), ask the registry once per token and repository
// however many requests come, deny when the registry cannot be reached, and
// leave registries it does not verify alone.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateImage, type GeneratedImage } from '../../tests/support/image.ts';
import { startTokenService, type TokenService } from '../../tests/support/token-service.ts';
import { startUpstream, type Upstream } from '../../tests/support/upstream.ts';
import { bearerChallenge } from './challenge.ts';
import { createPullGate, tokenExpiryMs, type PullGate, type PullRequestInfo } from './gate.ts';
import { createUpstreamProbe, type UpstreamProbe } from './upstream.ts';

const KiB = 1024;
const ALICE = { username: 'alice', password: 'alice-secret' };
const USERS = { alice: { password: ALICE.password, pull: ['team/*'], push: ['team/*'] }, bob: { password: 'bob-secret', pull: ['other/app'] } };

/** Counts the probe's questions to the registry. */
function counting(probe: UpstreamProbe): UpstreamProbe & { asked: { anonymous: number; verify: number } } {
  const asked = { anonymous: 0, verify: 0 };
  return {
    asked,
    anonymous: (target) => (asked.anonymous++, probe.anonymous(target)),
    verify: (target, token) => (asked.verify++, probe.verify(target, token)),
  };
}

describe('pull gate against a private docker-registry', { timeout: 120_000 }, () => {
  let dir = '';
  let tokens: TokenService;
  let privateRegistry: Upstream;
  let publicRegistry: Upstream;
  let image: GeneratedImage;
  let probe: ReturnType<typeof counting>;
  let gate: PullGate;
  const request = (overrides: Partial<PullRequestInfo> = {}): PullRequestInfo => ({
    registry: privateRegistry.host,
    repository: 'team/app',
    kind: 'manifests',
    reference: 'v1',
    authorization: undefined,
    ...overrides,
  });
  const mint = (access: string, expiresInSec = 300): string =>
    tokens.mint({ subject: 'alice', access: [{ type: 'repository', name: access, actions: ['pull'] }], expiresInSec });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mirra-gate-'));
    await mkdir(join(dir, 'tokens'));
    [tokens, image] = await Promise.all([
      startTokenService({ dir: join(dir, 'tokens'), users: USERS }),
      generateImage({ dir: join(dir, 'image'), layers: [32 * KiB], seed: 'gate' }),
    ]);
    [privateRegistry, publicRegistry] = await Promise.all([
      startUpstream({ dir: join(dir, 'private'), tokenAuth: tokens.registryAuth }),
      startUpstream({ dir: join(dir, 'public') }),
    ]);
    await privateRegistry.push(image.layoutDir, 'team/app', 'v1', { credentials: ALICE });
    await publicRegistry.push(image.layoutDir, 'library/app', 'v1');
    probe = counting(createUpstreamProbe({ timeoutMs: 2000 }));
    gate = createPullGate({
      registries: new Map([
        [privateRegistry.host, `http://${privateRegistry.host}`],
        [publicRegistry.host, `http://${publicRegistry.host}`],
        ['127.0.0.1:9', 'http://127.0.0.1:9'],
      ]),
      probe,
    });
  });
  after(async () => {
    await Promise.allSettled([privateRegistry?.stop(), publicRegistry?.stop(), tokens?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  it("answers a request without a token with the registry's own challenge, for the asked repository", async () => {
    const decision = await gate.decide(request({ repository: 'team/other' }));
    assert.equal(decision.kind, 'challenge');
    const challenge = decision.kind === 'challenge' ? bearerChallenge(decision.header) : undefined;
    assert.deepEqual(challenge, { realm: tokens.realm, service: tokens.service, scope: 'repository:team/other:pull' });
  });

  it('allows a token that may pull the repository, for manifests and blobs, and asks the registry once for it', async () => {
    const token = mint('team/app');
    const before = probe.asked.verify;
    const decisions = await Promise.all([
      gate.decide(request({ authorization: `Bearer ${token}` })),
      gate.decide(request({ authorization: `Bearer ${token}`, kind: 'blobs', reference: image.layers[0]!.digest })),
      gate.decide(request({ authorization: `Bearer ${token}`, kind: 'manifests', reference: image.manifestDigest })),
    ]);
    assert.deepEqual(
      decisions.map((d) => d.kind),
      ['allow', 'allow', 'allow'],
    );
    assert.equal(probe.asked.verify - before, 1, 'one check for one token and repository');
    assert.equal(
      (await gate.decide(request({ authorization: `Bearer ${token}`, reference: 'missing-tag' }))).kind,
      'allow',
      'a tag the registry lacks: the token was accepted',
    );
  });

  it('denies a token for another repository, an anonymous one, an expired one, a forged one, Basic credentials and garbage', async () => {
    const anonymous = tokens.mint({ subject: '', access: [] });
    const cases: Array<[string, string]> = [
      ['another repository', `Bearer ${mint('team/other')}`],
      ['anonymous', `Bearer ${anonymous}`],
      ['expired', `Bearer ${mint('team/app', -120)}`],
      ['forged', `Bearer ${tokens.mintForged({ subject: 'alice', access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }] })}`],
      ['basic', `Basic ${Buffer.from('alice:alice-secret').toString('base64')}`],
      ['garbage', 'Bearer not a token'],
    ];
    for (const [what, authorization] of cases) {
      const decision = await gate.decide(request({ authorization }));
      assert.equal(decision.kind, 'deny', what);
      // The registry refused the four tokens: its challenge again (containerd then fails as at the registry); the rest: a 404.
      const refused = !['basic', 'garbage'].includes(what);
      assert.equal(decision.kind === 'deny' && decision.challenge !== undefined, refused, `${what}: challenge again`);
    }
  });

  it('serves a public repository of a verified registry without a token, and leaves other registries alone', async () => {
    assert.equal((await gate.decide(request({ registry: publicRegistry.host, repository: 'library/app' }))).kind, 'allow');
    assert.equal((await gate.decide(request({ registry: 'docker.io' }))).kind, 'open');
    assert.equal(gate.verifies('docker.io'), false);
    assert.equal(gate.verifies(privateRegistry.host), true);
  });

  it('denies when the registry cannot be reached, with or without a token', async () => {
    for (const authorization of [undefined, `Bearer ${mint('team/app')}`]) {
      const decision = await gate.decide(request({ registry: '127.0.0.1:9', authorization }));
      assert.equal(decision.kind, 'deny');
    }
  });

  it("reads a JWT's exp to bound how long a yes is kept, and nothing from other tokens", () => {
    const token = mint('team/app', 60);
    const exp = tokenExpiryMs(token);
    assert.ok(exp !== undefined && Math.abs(exp - (Date.now() + 60_000)) < 5_000);
    assert.equal(tokenExpiryMs('opaque-token'), undefined);
    assert.equal(tokenExpiryMs('a.%%%.c'), undefined);
  });
});
