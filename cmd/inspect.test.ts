// `mirra shards` and `mirra locate` against the Kubernetes API stand-in: real
// registry apps with real owner services on loopback addresses play the
// agents (fed as holders feed them, with the ownership table computed from
// the same ready endpoints the CLI reads), their pods carry the status
// annotations the agents write, and `mirra locate` reaches the owners through
// the stand-in's pods/proxy, as it reaches them through a real API server.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createAddressAllowList, type AddressAllowList } from '../internal/auth/allow.ts';
import { createOwnerService, type MemberView, type OwnerService } from '../internal/owners/owner.ts';
import { agentOwnership, type OwnershipTable } from '../internal/owners/ownership.ts';
import { OWNER_REPLICAS, OWNER_SHARDS } from '../internal/owners/protocol.ts';
import { statusAnnotations, UPDATED_ANNOTATION } from '../internal/owners/status.ts';
import { createHasher, type Hasher } from '../internal/routing/hash.ts';
import { digestOf, keyNumber, shardOfKey } from '../internal/routing/owner-store.ts';
import { createRendezvousRanking } from '../internal/routing/rendezvous.ts';
import { startKubeApi, type KubeApi } from '../tests/kube/server.ts';
import { runMirra } from '../tests/support/cli.ts';
import { createTestApp } from '../tests/support/registry/testkit.ts';

const digest = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;
const NGINX = 'docker.io/library/nginx:1.27';
const UPDATED = '2026-12-06T08:00:00.000Z';
const SELECTOR = { 'app.kubernetes.io/name': 'mirra' };

interface AgentSpec {
  name: string;
  node: string;
  ip: string;
  /** What this agent holds. */
  keys: string[];
}

interface RunningAgent extends AgentSpec {
  app: FastifyInstance;
  port: number;
  owner: OwnerService;
}

/** The ready members; mirra-c publishes a stale status (no owned shards) on purpose. */
const SPECS: AgentSpec[] = [
  { name: 'mirra-a', node: 'node-1', ip: '127.0.0.2', keys: [NGINX, digest(1), digest(2)] },
  { name: 'mirra-b', node: 'node-2', ip: '127.0.0.3', keys: [digest(2), digest(3)] },
  { name: 'mirra-c', node: 'node-3', ip: '127.0.0.4', keys: [digest(4)] },
];

const mirra = (args: string[]): ReturnType<typeof runMirra> => runMirra(args);

function ownershipOf(hasher: Hasher, members: string[]): OwnershipTable {
  return agentOwnership(createRendezvousRanking(hasher), members);
}

interface AgentOptions {
  /** --local-only's list (default: anyone). */
  localClients?: AddressAllowList;
  /** How long the owner answers `warming` after taking its shards (default 0: never). */
  warmMs?: number;
}

/** A registry app whose index owner owns what `table` gives it, on `spec.ip`. */
async function startAgent(spec: AgentSpec, hasher: Hasher, table: OwnershipTable, options: AgentOptions = {}): Promise<RunningAgent> {
  const members = new Set(table.members);
  const member = (name: string): MemberView | undefined => (members.has(name) ? { ready: true, zone: undefined } : undefined);
  const owner = createOwnerService({ hasher, warmMs: options.warmMs ?? 0, graceMs: 60_000, member });
  owner.setOwned(table.ownedBy(spec.name));
  const { app } = createTestApp({ indexOwner: owner, localClients: options.localClients });
  await app.listen({ host: spec.ip, port: 0 });
  return { ...spec, app, port: (app.server.address() as AddressInfo).port, owner };
}

/** Every agent's keys, pushed in full to both owners of each key's shard, as the holders push them. */
function feed(agents: readonly RunningAgent[], table: OwnershipTable, hasher: Hasher): void {
  const byName = new Map(agents.map((agent) => [agent.name, agent]));
  for (const holder of agents) {
    const byShard = new Map<number, number[]>();
    for (const key of holder.keys) {
      const number = keyNumber(hasher.hash(key));
      const shard = shardOfKey(number, OWNER_SHARDS);
      byShard.set(shard, [...(byShard.get(shard) ?? []), number]);
    }
    for (const [shard, keys] of byShard) {
      for (const owner of table.owners(shard)) {
        const resend = byName.get(owner)?.owner.receive(holder.name, [{ shard, op: 'full', keys, digest: digestOf(new Set(keys)) }]);
        assert.deepEqual(resend, []);
      }
    }
  }
}

function podObject(namespace: string, name: string, node: string, extra: { ip?: string; port?: number; annotations?: Record<string, string> }): unknown {
  const ports = extra.port === undefined ? [] : [{ name: 'registry', containerPort: extra.port }];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: SELECTOR, annotations: extra.annotations ?? {} },
    spec: { nodeName: node, containers: [{ name: 'registry', image: 'mirra', ports }] },
    status: { phase: 'Running', ...(extra.ip === undefined ? {} : { podIP: extra.ip }), conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

/** One slice per agent: each listens on its own ephemeral port, and a slice has one port list. */
function sliceObject(namespace: string, endpoint: { pod: string; node: string; ip: string; port: number; ready: boolean }): unknown {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `mirra-${endpoint.pod}`, namespace, labels: { 'kubernetes.io/service-name': 'mirra' } },
    addressType: 'IPv4',
    ports: [{ name: 'registry', port: endpoint.port, protocol: 'TCP' }],
    endpoints: [
      {
        addresses: [endpoint.ip],
        conditions: { ready: endpoint.ready },
        nodeName: endpoint.node,
        targetRef: { kind: 'Pod', name: endpoint.pod, namespace },
      },
    ],
  };
}

function publish(api: KubeApi, agent: RunningAgent, table: OwnershipTable): void {
  const owned = agent.name === 'mirra-c' ? [] : table.ownedBy(agent.name);
  const status = statusAnnotations({ keys: agent.keys.length, owned, postings: agent.owner.stats().postings, members: table.members.length });
  api.create(podObject('mirra', agent.name, agent.node, { ip: agent.ip, port: agent.port, annotations: { ...status, [UPDATED_ANNOTATION]: UPDATED } }));
  api.create(sliceObject('mirra', { pod: agent.name, node: agent.node, ip: agent.ip, port: agent.port, ready: true }));
}

let dir: string;
let api: KubeApi;
let kubeconfig: string;
let hasher: Hasher;
let table: OwnershipTable;
let agents: RunningAgent[] = [];
/** The one agent of namespace `locked`: --local-only without the API server's address. */
let locked: RunningAgent | undefined;

/** Agents besides the ready members: a not-ready endpoint without a pod, a pod of the first version, a pod the selector leaves out. */
function createOthers(): void {
  api.create(sliceObject('mirra', { pod: 'mirra-d', node: 'node-4', ip: '127.0.0.5', port: 1, ready: false }));
  api.create(podObject('mirra', 'mirra-e', 'node-5', { annotations: { 'mirra.dev/summary': 'v=1;mode=gcs;s=8;n=3;g=1;m=104' } }));
  api.create({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'other', namespace: 'mirra', labels: { app: 'other' } },
    spec: { nodeName: 'node-1', containers: [{ name: 'x', image: 'x' }] },
  });
}

async function createLocked(): Promise<void> {
  const spec = { name: 'mirra-l', node: 'node-9', ip: '127.0.0.6', keys: [] };
  locked = await startAgent(spec, hasher, ownershipOf(hasher, [spec.name]), { localClients: createAddressAllowList(['10.0.0.1']) });
  api.create(podObject('locked', spec.name, spec.node, { ip: spec.ip, port: locked.port }));
  api.create(sliceObject('locked', { pod: spec.name, node: spec.node, ip: spec.ip, port: locked.port, ready: true }));
}

/** The key of namespace `warm`, where each of two agents owns every shard and both hold the key. */
const WARM_KEY = digest(5);
let warm: RunningAgent[] = [];

/** The first owner of WARM_KEY's shard took it over lately (answers `warming`) and has heard only from itself so far. */
async function createWarm(): Promise<string> {
  const specs = [
    { name: 'mirra-w1', node: 'node-7', ip: '127.0.0.7', keys: [WARM_KEY] },
    { name: 'mirra-w2', node: 'node-8', ip: '127.0.0.8', keys: [WARM_KEY] },
  ];
  const warmTable = ownershipOf(
    hasher,
    specs.map((spec) => spec.name),
  );
  const key = keyNumber(hasher.hash(WARM_KEY));
  const shard = shardOfKey(key, OWNER_SHARDS);
  const first = warmTable.owners(shard)[0] ?? '';
  warm = await Promise.all(specs.map((spec) => startAgent(spec, hasher, warmTable, { warmMs: spec.name === first ? 3_600_000 : 0 })));
  for (const owner of warm) {
    for (const holder of warm) {
      if (owner.name === first && holder.name !== first) continue;
      owner.owner.receive(holder.name, [{ shard, op: 'full', keys: [key], digest: digestOf(new Set([key])) }]);
    }
  }
  for (const agent of warm) {
    api.create(podObject('warm', agent.name, agent.node, { ip: agent.ip, port: agent.port }));
    api.create(sliceObject('warm', { pod: agent.name, node: agent.node, ip: agent.ip, port: agent.port, ready: true }));
  }
  return first;
}

/** The first owner of WARM_KEY's shard in namespace `warm`. */
let warmFirst = '';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mirra-inspect-'));
  api = await startKubeApi({ proxyResponseTimeoutMs: 5_000 });
  kubeconfig = await api.kubeconfigPath(dir);
  hasher = await createHasher();
  table = ownershipOf(
    hasher,
    SPECS.map((spec) => spec.name),
  );
  agents = await Promise.all(SPECS.map((spec) => startAgent(spec, hasher, table)));
  feed(agents, table, hasher);
  for (const agent of agents) publish(api, agent, table);
  createOthers();
  await createLocked();
  warmFirst = await createWarm();
});

after(async () => {
  await Promise.all([...agents, ...warm, ...(locked === undefined ? [] : [locked])].map((agent) => agent.app.close()));
  await api?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** The table's row of a pod, split on runs of two spaces or more. */
function cells(stdout: string, pod: string): string[] {
  const line = stdout.split('\n').find((l) => l.split(/\s{2,}/)[1] === pod);
  assert.ok(line !== undefined, `no row for ${pod} in\n${stdout}`);
  return line.split(/\s{2,}/);
}

test('mirra shards shows per agent its readiness, keys, computed owned shards, postings and last update', async () => {
  const { code, stdout, stderr } = await mirra(['shards', '--kubeconfig', kubeconfig]);
  assert.equal(code, 0, stderr);
  const lines = stdout.trim().split('\n');
  assert.match(lines[0] ?? '', /^NODE\s+POD\s+READY\s+KEYS\s+OWNED\s+POSTINGS\s+LAST UPDATE$/);
  for (const agent of agents) {
    const owned = String(table.ownedBy(agent.name).length);
    const postings = String(agent.owner.stats().postings);
    const ownedCell = agent.name === 'mirra-c' ? `${owned} (pod says 0)` : owned;
    assert.deepEqual(cells(stdout, agent.name), [agent.node, agent.name, 'true', String(agent.keys.length), ownedCell, postings, UPDATED]);
  }
  assert.deepEqual(cells(stdout, 'mirra-d'), ['node-4', 'mirra-d', 'false', '-', '0', '-', 'in the EndpointSlices, but no pod matches --selector']);
  assert.deepEqual(cells(stdout, 'mirra-e'), ['node-5', 'mirra-e', 'false', '-', '0', '-', 'first-version summary (agent not upgraded)']);
  assert.match(
    stderr,
    /^mirra shards: pod mirra-e on node-5: cannot decode its status: first-version summary \(agent not upgraded\); the agent runs the first version of mirra: upgrade the release[^\n]*\n$/,
  );
  assert.doesNotMatch(stdout, /\bother\b/);
  assert.equal(lines.at(-1), '3 ready of 4 endpoints of service mirra; 256 shards, 2 owners each');
});

test('mirra shards --output json has every row with its computed owned shards', async () => {
  const { code, stdout, stderr } = await mirra(['shards', '--kubeconfig', kubeconfig, '--output', 'json']);
  assert.equal(code, 0, stderr);
  const rows: unknown = JSON.parse(stdout);
  assert.ok(Array.isArray(rows));
  assert.deepEqual(
    rows.map((row: { pod: string }) => row.pod),
    ['mirra-a', 'mirra-b', 'mirra-c', 'mirra-d', 'mirra-e'],
  );
  let owned = 0;
  for (const row of rows as Array<{ pod: string; ready: boolean; ownedShards: number[]; publishedOwned: number | null; keys: number | null }>) {
    assert.deepEqual(row.ownedShards, table.ownedBy(row.pod), row.pod);
    owned += row.ownedShards.length;
  }
  assert.equal(owned, OWNER_SHARDS * OWNER_REPLICAS, 'every shard has two owners among the rows');
  const c = (rows as Array<Record<string, unknown>>)[2];
  assert.equal(c?.publishedOwned, 0);
  assert.equal(c?.keys, 1);
});

test('mirra locate names the agents that hold a digest (two) or a reference (one)', async () => {
  const both = await mirra(['locate', digest(2), '--kubeconfig', kubeconfig]);
  assert.equal(both.code, 0, both.stderr);
  assert.equal(both.stderr, '');
  assert.match(both.stdout, /^NODE\s+POD\s+READY\n/);
  assert.match(both.stdout, /^node-1\s+mirra-a\s+true$/m);
  assert.match(both.stdout, /^node-2\s+mirra-b\s+true$/m);
  assert.equal(both.stdout.trim().split('\n').length, 3);

  const short = await mirra(['locate', 'nginx:1.27', '--kubeconfig', kubeconfig, '--output', 'json']);
  assert.equal(short.code, 0, short.stderr);
  const parsed = JSON.parse(short.stdout) as { key: string; shard: number; owners: string[]; agents: unknown[] };
  const shard = shardOfKey(keyNumber(hasher.hash(NGINX)), OWNER_SHARDS);
  assert.equal(parsed.key, NGINX);
  assert.equal(parsed.shard, shard);
  assert.deepEqual(parsed.owners, table.owners(shard));
  assert.deepEqual(parsed.agents, [{ node: 'node-1', pod: 'mirra-a', ready: true }]);
});

test('mirra locate of a key nobody holds says so', async () => {
  const none = await mirra(['locate', digest(99), '--kubeconfig', kubeconfig]);
  assert.equal(none.code, 0, none.stderr);
  assert.equal(none.stdout, `no agent holds ${digest(99)}\n`);
});

test('an owner refusing unsigned lookups (--local-only) is one line naming the fix, exit 1', async () => {
  const { code, stdout, stderr } = await mirra(['locate', digest(2), '--kubeconfig', kubeconfig, '--namespace', 'locked']);
  assert.equal(code, 1);
  assert.equal(stdout, '');
  assert.equal(stderr.split('\n').length, 2, stderr);
  assert.match(stderr, /^mirra locate: no owner of shard \d+ answered: mirra-l: HTTP 403 DENIED: .*--local-clients\n$/);
});

test("an owner answering `warming` has the second owner asked too, and their holders merged, first owner's first", async () => {
  const { code, stdout, stderr } = await mirra(['locate', WARM_KEY, '--kubeconfig', kubeconfig, '--namespace', 'warm', '--output', 'json']);
  assert.equal(code, 0, stderr);
  assert.equal(stderr, '', 'the second owner was not warming: its answer is complete');
  const second = warmFirst === 'mirra-w1' ? 'mirra-w2' : 'mirra-w1';
  const parsed = JSON.parse(stdout) as { answers: Array<{ owner: string; holders: string[]; warming: boolean }>; agents: Array<{ pod: string }> };
  const [firstAnswer, secondAnswer] = parsed.answers;
  assert.equal(parsed.answers.length, 2);
  assert.deepEqual([firstAnswer?.owner, firstAnswer?.warming, firstAnswer?.holders], [warmFirst, true, [warmFirst]]);
  assert.deepEqual([secondAnswer?.owner, secondAnswer?.warming, [...(secondAnswer?.holders ?? [])].sort()], [second, false, ['mirra-w1', 'mirra-w2']]);
  assert.deepEqual(
    parsed.agents.map((agent) => agent.pod),
    [warmFirst, second],
  );
});

test('bad input is one line and exit 2', async () => {
  const missing = await mirra(['locate', '--kubeconfig', kubeconfig]);
  assert.equal(missing.code, 2);
  const bad = await mirra(['locate', 'Not A Ref', '--kubeconfig', kubeconfig]);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  const service = await mirra(['shards', '--kubeconfig', kubeconfig, '--service-name', 'Not_A_Name']);
  assert.equal(service.code, 2);
  assert.match(service.stderr, /service-name/);
});

test('a bad kubeconfig or an unreachable API is one line and exit 1', async () => {
  const missing = await mirra(['shards', '--kubeconfig', join(dir, 'no-such-kubeconfig')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^mirra shards: [^\n]*\n$/);

  const gone = await startKubeApi();
  const goneDir = join(dir, 'gone');
  await mkdir(goneDir);
  const goneConfig = await gone.kubeconfigPath(goneDir);
  await gone.stop();
  for (const args of [['shards'], ['locate', digest(2)]]) {
    const down = await mirra([...args, '--kubeconfig', goneConfig]);
    assert.equal(down.code, 1, down.stderr);
    assert.match(down.stderr, new RegExp(`^mirra ${args[0]}: cannot reach the Kubernetes API at ${gone.url}: connect ECONNREFUSED [^\\n]*\\n$`));
  }
});

test('with the first owner down the second answers; with both down, one line and exit 1', async () => {
  const shard = shardOfKey(keyNumber(hasher.hash(digest(2))), OWNER_SHARDS);
  const [first, second] = table.owners(shard).map((name) => agents.find((agent) => agent.name === name));
  assert.ok(first !== undefined && second !== undefined);
  await first.app.close();

  const one = await mirra(['locate', digest(2), '--kubeconfig', kubeconfig, '--output', 'json']);
  assert.equal(one.code, 0, one.stderr);
  const parsed = JSON.parse(one.stdout) as { agents: Array<{ pod: string }>; answers: Array<{ owner: string; error: string | null }> };
  assert.deepEqual(parsed.agents.map((agent) => agent.pod).sort(), ['mirra-a', 'mirra-b']);
  assert.deepEqual(
    parsed.answers.map((answer) => [answer.owner, answer.error === null]),
    [
      [first.name, false],
      [second.name, true],
    ],
  );
  assert.match(one.stderr, new RegExp(`^mirra locate: owner ${first.name} of shard ${shard} did not answer: HTTP 503: .*connection refused\\n$`));

  await second.app.close();
  const none = await mirra(['locate', digest(2), '--kubeconfig', kubeconfig]);
  assert.equal(none.code, 1);
  assert.equal(none.stdout, '');
  assert.match(none.stderr, new RegExp(`^mirra locate: no owner of shard ${shard} answered: ${first.name}: [^\\n]*; ${second.name}: [^\\n]*\\n$`));
});
