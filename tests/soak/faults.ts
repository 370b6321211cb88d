// The soak's fault injector: at random intervals (from its own PRNG stream)
// one fault of the catalogue on a random target, each undone after a random
// while; several run at once (combined faults), one at a time per target.
// The catalogue: an agent killed (-9) and started again; an agent sent
// SIGTERM, preferably while its node pulls (it drains its running streams,
// exits 0) and started again; a containerd restarted; the API stand-in down
// for 5-40 s; watches answered 410 Expired or 500 for a while (open ones cut);
// a peer's responses stalling; a peer's blob bodies cut by a reset mid-blob;
// a peer's blob bytes corrupted; the upstream slowed to a trickle. The peer
// faults are the fault proxy's, on the path between nodes: reset and corrupt
// also hit containerd's GETs that follow a redirect to that peer; a stall
// does not (it would hold containerd until its 5 min progress timeout: the
// documented price of redirects, docs/ARCHITECTURE.md, Redirects).
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster, ClusterNode } from '../cluster/cluster.ts';
import type { PeerFault } from '../cluster/fault-proxy.ts';
import type { Random } from './prng.ts';

export const FAULT_KINDS = [
  'kill-agent',
  'sigterm-agent',
  'restart-containerd',
  'api-down',
  'watch-410',
  'watch-500',
  'peer-stall',
  'peer-reset',
  'peer-corrupt',
  'upstream-trickle',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultEvent {
  readonly id: number;
  readonly kind: FaultKind;
  /** A node name, `api` or `upstream`. */
  readonly target: string;
  /** ms since the epoch. */
  readonly startedAt: number;
  endedAt: number | undefined;
  /** What was done, and how it went (e.g. the agent's exit code and drain time). */
  detail: string;
}

export interface FaultContext {
  readonly cluster: Cluster;
  readonly random: Random;
  readonly events: FaultEvent[];
  /** What went wrong injecting or undoing a fault (an agent that would not drain, a containerd that would not start). */
  readonly problems: string[];
  /** Nodes whose workload is pulling now (SIGTERM prefers them: mid-stream). */
  readonly pulling: ReadonlySet<string>;
  /** The upstream's normal bandwidth, restored after a trickle. */
  readonly upstreamBytesPerSec: number;
  log(line: string): void;
}

const MiB = 1024 * 1024;
const GAP_MS: [number, number] = [3000, 10_000];
const TRICKLE_BYTES_PER_SEC = 256 * 1024;
/** The agent's --shutdown-grace is 20 s: a drain longer than this is a finding. */
const DRAIN_LIMIT_MS = 25_000;
/** SIGTERM waits this long for its node to start a pull, and then this long into it. */
const MID_PULL_WAIT_MS = 5000;
const MID_PULL_DELAY_MS = 150;
/** At most this many nodes with an agent or containerd down at once: the rest keep serving. */
const MAX_NODES_DOWN = 2;

/** Which targets are taken by a running fault. */
interface Taken {
  process: Set<string>;
  proxy: Set<string>;
  api: boolean;
  upstream: boolean;
}

/** A planned fault: everything random drawn up front, so the draws do not depend on how long faults take. */
interface Plan {
  kind: FaultKind;
  node: ClusterNode | undefined;
  /** How long it lasts (or the agent or containerd stays down), ms. */
  holdMs: number;
  /** Bytes into a body: where a stall or reset cuts, which byte is corrupted. */
  atByte: number;
}

/** Waits `ms`, or less when the run stops. */
function hold(ms: number, stop: AbortSignal): Promise<void> {
  return sleep(ms, undefined, { signal: stop }).catch(() => undefined);
}

function holdFor(kind: FaultKind, random: Random): number {
  if (kind === 'api-down') return random.int(5000, 40_000);
  if (kind === 'kill-agent') return random.int(500, 5000);
  if (kind === 'sigterm-agent' || kind === 'restart-containerd') return random.int(0, 3000);
  return random.int(5000, 20_000);
}

/** Draws the next fault and its target among those free; undefined when the one drawn has no free target. */
function plan(ctx: FaultContext, taken: Taken): Plan | undefined {
  const { random, cluster } = ctx;
  const kind = random.pick(FAULT_KINDS);
  const holdMs = holdFor(kind, random);
  const atByte = random.int(0, 4 * MiB);
  const nodeChoice = random.next();
  const choose = (nodes: ClusterNode[]): ClusterNode | undefined => (nodes.length === 0 ? undefined : nodes[Math.floor(nodeChoice * nodes.length)]);
  if (kind === 'api-down' || kind === 'watch-410' || kind === 'watch-500') return taken.api ? undefined : { kind, node: undefined, holdMs, atByte };
  if (kind === 'upstream-trickle') return taken.upstream ? undefined : { kind, node: undefined, holdMs, atByte };
  if (kind === 'peer-stall' || kind === 'peer-reset' || kind === 'peer-corrupt') {
    const node = choose(cluster.nodes.filter((n) => !taken.proxy.has(n.name)));
    return node === undefined ? undefined : { kind, node, holdMs, atByte };
  }
  if (taken.process.size >= MAX_NODES_DOWN) return undefined;
  const free = cluster.nodes.filter((n) => !taken.process.has(n.name));
  const pulling = free.filter((n) => ctx.pulling.has(n.name));
  const node = choose(kind === 'sigterm-agent' && pulling.length > 0 ? pulling : free);
  return node === undefined ? undefined : { kind, node, holdMs, atByte };
}

/** SIGTERM, while the node pulls when it starts one within 5 s: the agent drains and exits 0 within its grace; then it is started again. */
async function sigtermAgent(ctx: FaultContext, node: ClusterNode, event: FaultEvent): Promise<void> {
  for (const until = Date.now() + MID_PULL_WAIT_MS; !ctx.pulling.has(node.name) && Date.now() < until;) await sleep(20);
  if (ctx.pulling.has(node.name)) await sleep(MID_PULL_DELAY_MS); // into the pull's blob requests
  const agent = node.agent;
  const sent = Date.now();
  const midPull = ctx.pulling.has(node.name);
  agent.process.kill('SIGTERM');
  const exit = await Promise.race([agent.process.exited, sleep(DRAIN_LIMIT_MS).then(() => 'timeout' as const)]);
  const drainMs = Date.now() - sent;
  event.detail = `${midPull ? 'while its node pulled, ' : ''}exited ${exit} after ${(drainMs / 1000).toFixed(1)} s`;
  if (exit === 'timeout') {
    ctx.problems.push(`${node.name}: the agent had not exited ${DRAIN_LIMIT_MS / 1000} s after SIGTERM (fault #${event.id})`);
    await node.kill();
  } else if (exit !== 0) {
    ctx.problems.push(`${node.name}: the agent exited ${exit} on SIGTERM, not 0 (fault #${event.id})`);
  }
}

/** A peer fault on the node's fault proxy for a while; the event's detail says how many blob bodies it hit. */
async function peerFault(node: ClusterNode, fault: PeerFault, timing: { holdMs: number; stop: AbortSignal }, event: FaultEvent): Promise<void> {
  const proxy = node.faults;
  if (proxy === undefined) throw new Error(`${node.name} has no fault proxy`);
  proxy.resetRequests();
  proxy.faultRedirects(fault.kind !== 'stall');
  await proxy.set(fault);
  await hold(timing.holdMs, timing.stop);
  await proxy.set({ kind: 'none' });
  proxy.faultRedirects(false);
  const hit = proxy.requests().filter((r) => r.fault === fault.kind);
  event.detail += `: hit ${hit.length} blob bodies (${hit.filter((r) => r.redirected).length} after a redirect) of ${proxy.requests().length} peer requests`;
}

/** Starts again what a fault stopped, retried a few times; a start that keeps failing is a problem. */
async function startAgain(ctx: FaultContext, what: string, start: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await start();
      return;
    } catch (err) {
      if (attempt === 3) {
        ctx.problems.push(`${what} did not start again: ${err instanceof Error ? err.message : String(err)}`);
        return;
      }
      await sleep(1000);
    }
  }
}

/** Injects the planned fault and undoes it. */
async function inject(ctx: FaultContext, p: Plan, event: FaultEvent, stop: AbortSignal): Promise<void> {
  const { cluster } = ctx;
  const node = p.node;
  switch (p.kind) {
    case 'kill-agent':
      if (node === undefined) return;
      await node.kill();
      await hold(p.holdMs, stop);
      return startAgain(ctx, `${node.name}'s agent`, () => node.restartAgent());
    case 'sigterm-agent':
      if (node === undefined) return;
      await sigtermAgent(ctx, node, event);
      await hold(p.holdMs, stop);
      return startAgain(ctx, `${node.name}'s agent`, () => node.restartAgent());
    case 'restart-containerd':
      if (node === undefined) return;
      await node.stopContainerd();
      await hold(p.holdMs, stop);
      return startAgain(ctx, `${node.name}'s containerd`, () => node.startContainerd());
    case 'api-down':
      await cluster.api.stop();
      await hold(p.holdMs, stop);
      return startAgain(ctx, 'the API stand-in', () => cluster.api.restart());
    case 'watch-410':
    case 'watch-500':
      cluster.api.faults.failWatches(p.kind === 'watch-410' ? 410 : 500, p.holdMs);
      cluster.api.dropWatches();
      await hold(p.holdMs, stop);
      cluster.api.faults.clear();
      return;
    case 'peer-stall':
      return node && peerFault(node, { kind: 'stall', afterBytes: p.atByte }, { holdMs: p.holdMs, stop }, event);
    case 'peer-reset':
      return node && peerFault(node, { kind: 'reset', afterBytes: p.atByte }, { holdMs: p.holdMs, stop }, event);
    case 'peer-corrupt':
      return node && peerFault(node, { kind: 'corrupt', atByte: p.atByte }, { holdMs: p.holdMs, stop }, event);
    case 'upstream-trickle':
      cluster.upstream.setBandwidth(TRICKLE_BYTES_PER_SEC);
      await hold(p.holdMs, stop);
      cluster.upstream.setBandwidth(ctx.upstreamBytesPerSec);
      return;
  }
}

function describePlan(p: Plan): string {
  const seconds = `${(p.holdMs / 1000).toFixed(1)} s`;
  switch (p.kind) {
    case 'kill-agent':
    case 'restart-containerd':
    case 'sigterm-agent':
      return `down ${seconds} before starting again`;
    case 'peer-stall':
    case 'peer-reset':
      return `after ${p.atByte} bytes, for ${seconds}`;
    case 'peer-corrupt':
      return `byte ${p.atByte}, for ${seconds}`;
    case 'upstream-trickle':
      return `${TRICKLE_BYTES_PER_SEC / 1024} KiB/s for ${seconds}`;
    default:
      return `for ${seconds}`;
  }
}

function claim(taken: Taken, p: Plan, on: boolean): void {
  const name = p.node?.name;
  if (p.kind === 'api-down' || p.kind === 'watch-410' || p.kind === 'watch-500') taken.api = on;
  else if (p.kind === 'upstream-trickle') taken.upstream = on;
  else if (name !== undefined) {
    const set = p.kind.startsWith('peer-') ? taken.proxy : taken.process;
    if (on) set.add(name);
    else set.delete(name);
  }
}

/** Injects faults until `stop` aborts; then every running fault is undone early and awaited. */
export async function runFaults(ctx: FaultContext, stop: AbortSignal, startedAt: number): Promise<void> {
  const taken: Taken = { process: new Set(), proxy: new Set(), api: false, upstream: false };
  const running = new Set<Promise<void>>();
  const at = (ms: number): string => `${((ms - startedAt) / 1000).toFixed(1).padStart(6)} s`;
  while (!stop.aborted) {
    await hold(ctx.random.int(...GAP_MS), stop);
    if (stop.aborted) break;
    const p = plan(ctx, taken);
    if (p === undefined) continue;
    const event: FaultEvent = {
      id: ctx.events.length + 1,
      kind: p.kind,
      target: p.node?.name ?? (p.kind === 'upstream-trickle' ? 'upstream' : 'api'),
      startedAt: Date.now(),
      endedAt: undefined,
      detail: describePlan(p),
    };
    ctx.events.push(event);
    claim(taken, p, true);
    ctx.log(`[${at(event.startedAt)}] fault #${event.id} ${event.kind} ${event.target}: ${event.detail}`);
    const run = inject(ctx, p, event, stop)
      .catch((err: unknown) => {
        ctx.problems.push(`fault #${event.id} ${event.kind} on ${event.target} failed: ${err instanceof Error ? err.message : String(err)}`);
      })
      .finally(() => {
        event.endedAt = Date.now();
        claim(taken, p, false);
        ctx.log(`[${at(event.endedAt)}] fault #${event.id} ${event.kind} ${event.target} over (${event.detail})`);
        running.delete(run);
      });
    running.add(run);
  }
  await Promise.allSettled([...running]);
}
