// `npm run soak`: ten minutes (MIRRA_SOAK_SECONDS, default 600) of combined
// random faults on a live 5-node cluster (the local cluster harness: each
// node its own containerd 2.1 and its own agent, as the chart runs it: the
// built bundle, the chart's NODE_OPTIONS and --max-rss; fault proxies between
// nodes; the API stand-in; a 40 MB/s upstream), while a workload pulls,
// removes and pulls again a rotating set of generated images through the
// CRI on random nodes (workload.ts), and an injector kills, stops, restarts
// and disturbs things (faults.ts). Every pull must complete (retries
// allowed, as the kubelet retries) within its bound with content matching its
// digests; at the end every agent must be ready and serve, with its
// descriptors back near its start and its RSS under the chart's limit all
// along. Reproducible from its seed (MIRRA_SOAK_SEED; printed first): the
// PRNG makes every choice, the timing still varies.
//
// The bound on a pull, 120 s: the longest waits the design allows one pull,
// added up, are a follower waiting for a fetch that has not started (30 s
// without a byte), the upstream at a trickle (up to 20 s), a drain (up to the
// agent's 20 s --shutdown-grace), a peer stall (5 s, --peer-stall-timeout) and
// two retries with their backoff (1 + 2 s) after a containerd restart: about
// 80 s; the rest is margin for the 2-core machine this runs on.
//
// Last line: {"bench":"soak","seed":...,"seconds":...,"pulls":...,"failed_pulls":...,
//   "corrupt":...,"retries":...,"faults":...,"max_pull_s":...,"bound_s":120,
//   "fd_growth":...,"socket_growth":...,"peak_rss_mb":...,"shed_503":...,"problems":...}
// Exit code 1 when it failed, with the failure report (seed, replay command,
// fault timeline, the failing pulls' attempts and log lines) before it.
// MIRRA_SOAK_KEEP=1 keeps the cluster's directory (every agent's and
// containerd's log) after the run.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildAgent } from '../../hack/build.ts';
import { startCluster, type Cluster } from '../cluster/cluster.ts';
import { chartAgentEnv, chartMaxRss } from '../bench/load-support.ts';
import { waitFor } from '../support/process.ts';
import { trackAgents, type ResourceTracker } from './agent-resources.ts';
import { checkServing, restoreAll, settleHandles, type EndContext } from './end-checks.ts';
import { runFaults, type FaultEvent } from './faults.ts';
import { preparePool, type SoakImage } from './images.ts';
import { createRandom, newSeed } from './prng.ts';
import type { PullRecord } from './pull.ts';
import { failureReport, failures, sheddingOf, summarize, summaryLines, type SoakOutcome } from './report.ts';
import { runWorkload } from './workload.ts';

const NODES = 5;
const UPSTREAM_BYTES_PER_SEC = 40e6;
const BOUND_MS = 120_000;
const DEFAULT_SECONDS = 600;

function soakSeconds(): number {
  const text = process.env.MIRRA_SOAK_SECONDS ?? '';
  if (text === '') return DEFAULT_SECONDS;
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`MIRRA_SOAK_SECONDS must be a positive number of seconds, got ${JSON.stringify(text)}`);
  return seconds;
}

const log = (line: string): void => void process.stdout.write(`${line}\n`);

async function startSoakCluster(buildDir: string): Promise<Cluster> {
  const agentEntry = await buildAgent(buildDir);
  return startCluster({
    nodes: NODES,
    faultProxy: true,
    upstreamBandwidthBytesPerSec: UPSTREAM_BYTES_PER_SEC,
    agentEntry,
    agentEnv: await chartAgentEnv(),
    agentArgs: ['--max-rss', await chartMaxRss()],
    metrics: true,
    keepDir: process.env.MIRRA_SOAK_KEEP === '1',
  });
}

/** The run itself: workload and faults for `seconds`, then the end checks; what happened. */
async function run(cluster: Cluster, tracker: ResourceTracker, setup: { seed: string; seconds: number; pool: SoakImage[] }): Promise<SoakOutcome> {
  const { seed, seconds, pool } = setup;
  const records: PullRecord[] = [];
  const events: FaultEvent[] = [];
  const problems: string[] = [];
  const held = new Map<string, Set<string>>();
  const busy = new Set<string>();
  const pulling = new Set<string>();
  const startedAt = Date.now();
  const stop = new AbortController();
  const workload = runWorkload(
    { cluster, pool, random: createRandom(seed, 'workload'), startedAt, boundMs: BOUND_MS, records, held, busy, pulling, problems, log },
    stop.signal,
  );
  const faults = runFaults(
    { cluster, random: createRandom(seed, 'faults'), events, problems, pulling, upstreamBytesPerSec: UPSTREAM_BYTES_PER_SEC, log },
    stop.signal,
    startedAt,
  );
  await sleep(seconds * 1000);
  log(`soak: ${seconds} s are over: faults undone, waiting for the pulls in progress`);
  stop.abort();
  await faults;
  const end: EndContext = { cluster, tracker, pool, held, upstreamBytesPerSec: UPSTREAM_BYTES_PER_SEC, problems, log };
  await restoreAll(end);
  await workload;
  log('soak: every pull is over; checking that every agent is ready and serves, and its descriptors');
  await checkServing(end);
  const growth = await settleHandles(end);
  const shedding = await Promise.all(cluster.nodes.map((node) => sheddingOf(node.agent.logFile, node.name)));
  return { seed, seconds, boundMs: BOUND_MS, startedAt, records, events, incarnations: tracker.incarnations, growth, shedding, problems };
}

async function main(): Promise<number> {
  const seconds = soakSeconds();
  const seed = process.env.MIRRA_SOAK_SEED || newSeed();
  log(
    `soak: seed ${seed}, ${seconds} s, ${NODES} nodes (containerd, agent, fault proxy each), the API stand-in, a ${UPSTREAM_BYTES_PER_SEC / 1e6} MB/s upstream`,
  );
  log(`soak: replay with MIRRA_SOAK_SEED=${seed} MIRRA_SOAK_SECONDS=${seconds} npm run soak`);
  const buildDir = await mkdtemp(join(tmpdir(), 'mirra-soak-build-'));
  let cluster: Cluster | undefined;
  let tracker: ResourceTracker | undefined;
  try {
    cluster = await startSoakCluster(buildDir);
    await cluster.waitReady(60_000);
    const pool = await preparePool(cluster);
    log(`soak: cluster ready in ${cluster.dir}; ${pool.length} images pushed (${pool.map((i) => i.name).join(', ')})`);
    tracker = trackAgents(cluster);
    const started = tracker;
    const nodes = cluster.nodes;
    await waitFor(
      "every agent's baseline",
      async () => (await started.sample(), nodes.every((node) => started.current(node)?.baseline !== undefined)),
      30_000,
      500,
    );
    const outcome = await run(cluster, tracker, { seed, seconds, pool });
    const summary = summarize(outcome);
    for (const line of summaryLines(outcome)) log(line);
    const reasons = failures(summary, outcome);
    if (reasons.length > 0) for (const line of await failureReport(cluster, outcome, reasons)) log(line);
    else log(`soak: passed (seed ${seed})`);
    log(JSON.stringify(summary));
    return reasons.length > 0 ? 1 : 0;
  } finally {
    tracker?.stop();
    await cluster?.stop();
    await rm(buildDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(2);
  },
);
