// Private images on three nodes (issue 15): a real docker-registry with token
// authentication and the test token service beside the cluster's public
// upstream; every agent runs with --verify-pull-access for the private
// registry. Pulls go through containerd's CRI plugin with credentials in the
// PullImageRequest, as the kubelet passes an imagePullSecret. A pull with
// credentials for the repository gets every blob from a node that has it (the
// private registry sees only the agents' checks, HEADs); a pull without
// credentials, or with credentials for another repository, fails exactly as
// without mirra, and no byte of the private image leaves any agent; a public
// image is not touched; tokens that are expired, forged or for another
// repository are refused.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadPeerKeys } from '../../internal/auth/secret.ts';
import { createPeerSigner } from '../../internal/auth/sign.ts';
import { VERIFIED_PARAM } from '../../internal/pullauth/assertion.ts';
import { startCluster, type Cluster, type ClusterNode } from '../cluster/cluster.ts';
import { holdersOf } from '../cluster/holders.ts';
import { waitUntilServed } from '../cluster/served.ts';
import { createHasher } from '../../internal/routing/hash.ts';
import { waitFor } from '../support/process.ts';
import { criPull } from '../support/cri.ts';
import { writeMirrorHosts, writeUpstreamHosts } from '../support/hosts.ts';
import { generateImage, type GeneratedImage } from '../support/image.ts';
import { startTokenService, type TokenService } from '../support/token-service.ts';
import { startUpstream, type Upstream } from '../support/upstream.ts';

const KiB = 1024;
const ALICE = { username: 'alice', password: 'alice-secret' };
const BOB = { username: 'bob', password: 'bob-secret' };
const USERS = { alice: { password: ALICE.password, pull: ['team/*'], push: ['team/*'] }, bob: { password: BOB.password, pull: ['other/*'] } };

describe('private images through mirra, on three nodes', { timeout: 300_000 }, () => {
  let tokens: TokenService;
  let registry: Upstream;
  let cluster: Cluster;
  let image: GeneratedImage;
  let publicImage: GeneratedImage;
  let ref = '';
  const digests = (): string[] => [image.manifestDigest, image.configDigest, ...image.layers.map((l) => l.digest)];
  const pullAs = (node: ClusterNode, credentials?: { username: string; password: string }): Promise<string> =>
    criPull(node.containerd.socket, ref, credentials === undefined ? {} : { credentials });

  /** The message of a failed pull, without what names the host that answered (the mirror or the registry). */
  async function failure(pull: Promise<unknown>): Promise<string> {
    const err = await pull.then(
      () => assert.fail('the pull succeeded'),
      (e: unknown) => e,
    );
    return String(err instanceof Error ? err.message : err).replace(/ to http:\/\/[^ ]+/g, ' to <host>');
  }

  /** 200 answers of the agent that carried bytes of the private image (to containerd or to a peer). */
  async function servedPrivate(node: ClusterNode): Promise<number> {
    const lines = await node.agent.accessLines();
    return lines.filter((line) => line.status === 200 && line.method === 'GET' && digests().some((d) => String(line.url).includes(d))).length;
  }

  /** The token service's and the registry's files (the cluster removes its own). */
  let dir: string | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mirra-private-'));
    await mkdir(join(dir, 'tokens'));
    tokens = await startTokenService({ dir: join(dir, 'tokens'), users: USERS });
    registry = await startUpstream({ dir: join(dir, 'registry'), tokenAuth: tokens.registryAuth });
    cluster = await startCluster({
      nodes: 3,
      mirroredRegistries: [registry.host],
      agentArgs: ['--verify-pull-access', `http://${registry.host}`],
    });
    await cluster.waitReady();
    for (const node of cluster.nodes) await writeMirrorHosts(node.hostsDir, registry.host, node.agent.url);
    image = await generateImage({ dir: join(cluster.dir, 'img-private'), layers: [512 * KiB, 256 * KiB], seed: 'private-e2e' });
    publicImage = await generateImage({ dir: join(cluster.dir, 'img-public'), layers: [128 * KiB], seed: 'public-e2e' });
    await registry.push(image.layoutDir, 'team/app', 'v1', { credentials: ALICE });
    await cluster.upstream.push(publicImage.layoutDir, 'library/public', 'v1');
    ref = `${registry.host}/team/app:v1`;
  });

  after(async () => {
    await cluster?.stop();
    await registry?.stop();
    await tokens?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test('node-1 pulls with credentials; node-2 with credentials gets every byte from node-1, the registry sees HEADs only', async () => {
    const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
    assert.equal(await pullAs(n1, ALICE), image.configDigest);
    const hasher = await createHasher();
    await waitFor(
      'the owners to name node-1 for the image',
      async () => {
        for (const key of [ref, ...digests()]) if (!(await holdersOf(cluster, hasher, key)).includes('node-1')) return false;
        return true;
      },
      10_000,
      100,
    );
    registry.resetCounts();
    tokens.resetRequests();
    assert.equal(await pullAs(n2, ALICE), image.configDigest);
    const seen = registry.counts().requests.map((r) => `${r.method} ${r.status}`);
    console.log(`# node-2's pull: ${seen.length} requests at the registry (${seen.join(', ')}), ${tokens.requests().length} at the token service`);
    // One anonymous HEAD learns the repository's challenge (kept 5 min); one HEAD checks each of the pull's two tokens.
    assert.deepEqual(seen, ['HEAD 401', 'HEAD 200', 'HEAD 200']);
    assert.equal(tokens.requests().length, 2, "containerd's two tokens, as without mirra");
    const requests = registry.counts().requests;
    assert.deepEqual(
      requests.filter((r) => r.method !== 'HEAD').map((r) => `${r.method} ${r.path} ${r.status}`),
      [],
      'the private registry saw only the agents checking tokens',
    );
    assert.ok(requests.length > 0, 'node-2 checked its token at the registry');
    assert.ok((await servedPrivate(n1)) >= image.layers.length, 'node-1 served the layers to node-2');
    const lines = await n2.agent.accessLines();
    assert.ok(
      lines.some((line) => line.pullAccess === 'challenge'),
      'node-2 challenged containerd first',
    );
    assert.ok(
      lines.some((line) => line.pullAccess === 'allow'),
      'then let its token through',
    );
  });

  test('node-3 without credentials, or with credentials for another repository: the pull fails and no byte of the image leaves an agent', async () => {
    const [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    // The same pulls without mirra (node-3's hosts.toml naming the registry alone): the errors to match.
    await writeUpstreamHosts(n3.hostsDir, registry.host);
    const without = [await failure(pullAs(n3)), await failure(pullAs(n3, BOB))];
    await writeMirrorHosts(n3.hostsDir, registry.host, n3.agent.url);
    const before = await Promise.all([n1, n2, n3].map(servedPrivate));
    const withMirra = [await failure(pullAs(n3)), await failure(pullAs(n3, BOB))];
    assert.deepEqual(withMirra, without, 'the pulls fail as without mirra');
    assert.match(withMirra[0]!, /pull access denied, repository does not exist or may require authorization/);
    const afterwards = await Promise.all([n1, n2, n3].map(servedPrivate));
    assert.deepEqual(afterwards, before, 'no agent served a byte of the private image');
    const denied = (await n3.agent.accessLines()).filter((line) => line.pullAccess === 'deny');
    assert.ok(denied.length > 0, "node-3's agent denied the tokens it was shown");
  });

  test('tokens that are expired, forged, anonymous or for another repository get the challenge again, Basic credentials a 404; a good token is served', async () => {
    const n2 = cluster.nodes[1]!;
    const access = (name: string): Array<{ type: string; name: string; actions: string[] }> => [{ type: 'repository', name, actions: ['pull'] }];
    const blobUrl = `${n2.agent.url}/v2/team/app/blobs/${image.layers[0]!.digest}?ns=${encodeURIComponent(registry.host)}`;
    const cases: Array<[string, string, number]> = [
      ['expired', `Bearer ${tokens.mint({ subject: 'alice', access: access('team/app'), expiresInSec: -120 })}`, 401],
      ['forged', `Bearer ${tokens.mintForged({ subject: 'alice', access: access('team/app') })}`, 401],
      ['anonymous', `Bearer ${tokens.mint({ subject: '', access: [] })}`, 401],
      ['another repository', `Bearer ${tokens.mint({ subject: 'alice', access: access('team/other') })}`, 401],
      ['basic', `Basic ${Buffer.from('alice:alice-secret').toString('base64')}`, 404],
    ];
    for (const [what, authorization, status] of cases) {
      const res = await fetch(blobUrl, { headers: { authorization } });
      const body = await res.text();
      assert.equal(res.status, status, what);
      assert.ok(!body.includes('sha256:') || res.status !== 200, what);
      if (status === 401)
        assert.match(
          res.headers.get('www-authenticate') ?? '',
          /^Bearer realm=".*",service=".*",scope="repository:team\/app:pull",error="(invalid_token|insufficient_scope)"$/,
          what,
        );
    }
    const good = await fetch(blobUrl, { headers: { authorization: `Bearer ${tokens.mint({ subject: 'alice', access: access('team/app') })}` } });
    assert.equal(good.status, 200, 'a good token is served');
    assert.equal(Buffer.from(await good.arrayBuffer()).length, image.layers[0]!.size);
  });

  test('a peer serves the private image only to a signed request that asserts the pull was verified', async () => {
    const n1 = cluster.nodes[0]!;
    assert.ok(cluster.peerSecretFile !== undefined);
    const keys = await loadPeerKeys(cluster.peerSecretFile);
    const sign = createPeerSigner({ key: keys.signing, self: cluster.nodes[2]!.podName });
    const ask = async (assertion: boolean): Promise<number> => {
      const path = `/v2/team/app/blobs/${image.layers[1]!.digest}?ns=${encodeURIComponent(registry.host)}${assertion ? `&${VERIFIED_PARAM}=1` : ''}`;
      const res = await fetch(`${n1.agent.url}${path}`, { headers: sign({ method: 'GET', path, audience: n1.podName }) });
      await res.body?.cancel();
      return res.status;
    };
    assert.equal(await ask(false), 404, 'without the assertion: nothing');
    assert.equal(await ask(true), 200, 'with it: the blob');
  });

  test('a public image in the same cluster is served as before, without any challenge', async () => {
    const [n1, , n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const publicRef = `${cluster.upstream.host}/library/public:v1`;
    await n1.pull(publicRef);
    cluster.upstream.resetCounts();
    await waitUntilServed(cluster, [n3], { repository: 'library/public', digest: publicImage.layers[0]!.digest });
    await n3.pull(publicRef);
    assert.equal(cluster.upstream.counts().blobGets, 0, 'node-3 got the public layers from node-1');
    assert.ok(!(await n3.agent.accessLines()).some((line) => line.registry === cluster.upstream.host && line.status === 401));
  });
});
