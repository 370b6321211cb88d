// npm run bench:scale: what discovery costs at N = 100, 1,000 and 5,000 agents
// when every node pulls one new 10-layer image within a minute (a rollout
// wave), with 2,000 keys per node before (40 images x 50 keys, 30 of them on
// every node, as bench:apiload's model).
//
// - p2p: N agents simulated in one process (scale-sim.ts) with the real
//   ownership table, holders, owner services, locators and codec; every
//   node looks its 13 new keys up (a miss asks the owner) and then holds
//   them (its holder pushes the changed shards). Messages and bytes are
//   counted on the wire, with the HTTP headers of real requests (scale-wire.ts).
// - API: the only API writes of a wave are the agents' status patches, at
//   most one per agent per --status-interval (3 min), each to the pod's 3
//   watchers, none of them an agent (api-model.ts, real objects). The
//   reference is the same updates sent to all N agents, as any design in
//   which the agents watch each other's pods pays (the first version did).
// - routing memory of one agent: the one with the most postings as an
//   owner, rebuilt alone from what it received, plus its holder and the
//   table, measured on the heap (--expose-gc).
// - owner_lookup_p99_ms: on the real 10-node harness (scale-harness.ts).
// MB = 10^6 bytes. The last line is the JSON summary.
import { createHasher, type Hasher } from '../../internal/routing/hash.ts';
import { agentOwnership } from '../../internal/owners/ownership.ts';
import { createRendezvousRanking } from '../../internal/routing/rendezvous.ts';
import { statusEventBytes, waveEgress } from './api-model.ts';
import { measureOneAgent } from './scale-memory.ts';
import { measureOwnerLookups } from './scale-harness.ts';
import { closeSimulation, createSimulation, type SimAgent, type Simulation } from './scale-sim.ts';
import { measureWireOverhead } from './scale-wire.ts';

const SIZES = [100, 1000, 5000];
const IMAGES = 40;
const SHARED_IMAGES = 30;
const KEYS_PER_IMAGE = 50;

const exposedGc = (globalThis as { gc?: () => void }).gc;
if (exposedGc === undefined) throw new Error('run with node --expose-gc');
const gc: () => void = exposedGc;

/** Keys of the images every node has, made once (as the agents' own strings would be, one copy per agent process). */
const sharedKeys = new Map<string, string>();

function hexKey(hasher: Hasher, seed: string): string {
  let key = sharedKeys.get(seed);
  if (key === undefined) {
    key = `sha256:${hasher.digest(`${seed}a`)}${hasher.digest(`${seed}b`)}${hasher.digest(`${seed}c`)}${hasher.digest(`${seed}d`)}`;
    if (seed.startsWith('img') && Number(seed.slice(3, seed.indexOf('-'))) < SHARED_IMAGES) sharedKeys.set(seed, key);
  }
  return key;
}

function nodeKeys(hasher: Hasher, node: number): Set<string> {
  const keys = new Set<string>();
  for (let image = 0; image < IMAGES; image++) {
    const id = image < SHARED_IMAGES ? image : 1000 + node * 10 + image;
    keys.add(`docker.io/library/app${id}:1.${id % 9}`);
    for (let k = 1; k < KEYS_PER_IMAGE; k++) keys.add(hexKey(hasher, `img${id}-${k}`));
  }
  return keys;
}

function newImageKeys(hasher: Hasher): string[] {
  return ['registry.example.com/shop/checkout:2.4.0', ...Array.from({ length: 12 }, (_, k) => hexKey(hasher, `new-${k}`))];
}

async function settle(agents: Iterable<SimAgent>): Promise<void> {
  await Promise.all([...agents].map((agent) => agent.holder.idle()));
}

/** The fill before the wave: every agent's 2,000 keys pushed to the owners (not measured). */
async function fill(sim: Simulation, hasher: Hasher): Promise<{ ownershipMs: number; fillMs: number }> {
  const started = performance.now();
  const table = agentOwnership(createRendezvousRanking(hasher), sim.byName.keys());
  const ownershipMs = performance.now() - started;
  sim.table = table;
  let node = 0;
  for (const agent of sim.byName.values()) {
    agent.owner.setOwned(table.ownedBy(agent.name));
    agent.holder.setOwnership(table);
    agent.holder.setKeys(nodeKeys(hasher, node++));
  }
  const filling = performance.now();
  await settle(sim.byName.values());
  return { ownershipMs, fillMs: performance.now() - filling };
}

/** The wave: each node misses the new image's keys (lookups), then holds them (pushes). */
async function wave(sim: Simulation, hasher: Hasher): Promise<void> {
  const fresh = newImageKeys(hasher);
  sim.measuring = true;
  let node = 0;
  for (const agent of sim.byName.values()) {
    for (const key of fresh) await agent.locator.locate(key);
    const keys = nodeKeys(hasher, node++);
    for (const key of fresh) keys.add(key);
    agent.holder.setKeys(keys);
    await agent.holder.idle();
  }
  sim.measuring = false;
}

function apiEgress(sim: Simulation, n: number): { ownerMode: number; podWatch: number; eventBytes: number } {
  const [agent] = sim.byName.values();
  if (agent === undefined || sim.table === undefined) throw new Error('no agents');
  const status = { keys: agent.holder.stats().keys, owned: sim.table.ownedBy(agent.name), postings: agent.owner.stats().postings, members: n };
  const eventBytes = statusEventBytes(status);
  const { statusBytes, podWatchBytes } = waveEgress(n, eventBytes);
  return { ownerMode: statusBytes, podWatch: podWatchBytes, eventBytes };
}

interface SizeResult {
  n: number;
  apiMb: number;
  podWatchMb: number;
  eventBytes: number;
  p2pMb: number;
  messages: number;
  perNodeKb: number;
  maxPostings: number;
  ownershipMs: number;
  fillMs: number;
  routingMb?: number;
}

async function runSize(hasher: Hasher, wire: Awaited<ReturnType<typeof measureWireOverhead>>, n: number): Promise<SizeResult> {
  const sim = createSimulation(hasher, wire, n);
  const { ownershipMs, fillMs } = await fill(sim, hasher);
  await wave(sim, hasher);
  const api = apiEgress(sim, n);
  const { traffic } = sim;
  const p2pBytes = traffic.pushBytes + traffic.lookupBytes;
  let busiest: SimAgent | undefined;
  for (const agent of sim.byName.values()) if (busiest === undefined || agent.owner.stats().postings > busiest.owner.stats().postings) busiest = agent;
  const result: SizeResult = {
    n,
    apiMb: api.ownerMode / 1e6,
    podWatchMb: api.podWatch / 1e6,
    eventBytes: api.eventBytes,
    p2pMb: p2pBytes / 1e6,
    messages: traffic.pushes + traffic.lookups,
    perNodeKb: p2pBytes / n / 1e3,
    maxPostings: busiest?.owner.stats().postings ?? 0,
    ownershipMs,
    fillMs,
  };
  const members = [...sim.byName.keys()];
  closeSimulation(sim);
  if (n === SIZES[SIZES.length - 1] && busiest !== undefined) {
    const name = busiest.name;
    result.routingMb = (await measureOneAgent({ hasher, members, keysOf: (node) => nodeKeys(hasher, node), name }, gc)) / 1e6;
  }
  return result;
}

function printTable(results: readonly SizeResult[]): void {
  console.log(
    '| nodes N | API egress of the wave (MB) | pod-watch reference (MB) | ratio | p2p bytes of the wave (MB) | messages | per node (KB) | most postings of an owner | ownership table (ms) |',
  );
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const ratio = r.apiMb / r.podWatchMb;
    console.log(
      `| ${r.n} | ${r.apiMb.toFixed(1)} | ${r.podWatchMb.toFixed(0)} | ${ratio.toFixed(4)} | ${r.p2pMb.toFixed(1)} | ${r.messages} | ${r.perNodeKb.toFixed(1)} | ${r.maxPostings} | ${r.ownershipMs.toFixed(1)} |`,
    );
  }
}

const hasher = await createHasher();
// The real harness first, while this process's heap is small (the simulation's is gigabytes).
const harness = await measureOwnerLookups(hasher);
console.log(
  `owner lookups on the 10-node harness: p50 ${harness.p50Ms.toFixed(3)} ms, p99 ${harness.p99Ms.toFixed(3)} ms over ${harness.count}; /readyz on the same agents p99 ${harness.readyzP99Ms.toFixed(3)} ms (ratio ${(harness.p99Ms / harness.readyzP99Ms).toFixed(2)}); in the owners (access log) p99 ${harness.serverP99Ms.toFixed(3)} ms`,
);
const wire = await measureWireOverhead(hasher);
console.log(`wire: push headers ${wire.pushRequestHeaders} B, lookup headers ${wire.lookupRequestHeaders} B (+ path), answer headers ${wire.answerHeaders} B`);
const results: SizeResult[] = [];
for (const n of SIZES) {
  const result = await runSize(hasher, wire, n);
  console.log(`N=${n}: fill ${(result.fillMs / 1000).toFixed(1)} s (not measured), wave measured; status event ${result.eventBytes} B`);
  results.push(result);
}
printTable(results);
const at = (n: number): SizeResult => results.find((r) => r.n === n) ?? results[0]!;
const routingMb = at(5000).routingMb ?? 0;
console.log(`routing state of the busiest agent at N=5000: ${routingMb.toFixed(2)} MB (${at(5000).maxPostings} postings)`);
console.log(
  JSON.stringify({
    bench: 'scale',
    api_egress_mb_n100: Number(at(100).apiMb.toFixed(2)),
    api_egress_mb_n1000: Number(at(1000).apiMb.toFixed(2)),
    api_egress_mb_n5000: Number(at(5000).apiMb.toFixed(2)),
    api_egress_vs_pod_watch_n5000: Number((at(5000).apiMb / at(5000).podWatchMb).toFixed(5)),
    p2p_mb_n100: Number(at(100).p2pMb.toFixed(2)),
    p2p_mb_n1000: Number(at(1000).p2pMb.toFixed(2)),
    p2p_mb_n5000: Number(at(5000).p2pMb.toFixed(2)),
    routing_mb_per_agent_n5000: Number(routingMb.toFixed(2)),
    owner_lookup_p99_ms: Number(harness.p99Ms.toFixed(3)),
    owner_lookup_p99_vs_readyz: Number((harness.p99Ms / harness.readyzP99Ms).toFixed(2)),
    owner_lookup_in_owner_p99_ms: Number(harness.serverP99Ms.toFixed(3)),
  }),
);
