// What the two load benches (load.ts: one agent serving from containerd;
// load-peer.ts: an agent serving from a peer) share: running a load generator
// (load-client.ts) as its own process, /proc readings; and, with bench:p2p,
// the agent built as the image runs it (plain JavaScript, the chart's
// NODE_OPTIONS and memory limit).
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { load } from 'js-yaml';
import { buildAgent as buildBundle } from '../../hack/build.ts';
import { parseByteSize } from '../../internal/config/agent-flags.ts';
import { MEMORY_LIMIT_SHARE } from '../../internal/registry/pressure.ts';
import type { LoadResult } from './load-client.ts';

const CLIENT = fileURLToPath(new URL('./load-client.ts', import.meta.url));
const MiB = 1024 * 1024;

/** The load of both benches: the image's layers (the first one is streamed), blob streams, manifest HEADs per second. */
export const LOAD_LAYER_BYTES = [32 * MiB, 4 * MiB, 256 * 1024];
export const LOAD_STREAMS = 200;
export const LOAD_HEADS_PER_SECOND = 1000;

function isLoadResult(value: unknown): value is LoadResult {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Record<string, unknown>;
  return (
    typeof r.requests === 'number' &&
    typeof r.skipped === 'number' &&
    typeof r.redirects === 'number' &&
    typeof r.bodyBytes === 'number' &&
    typeof r.seconds === 'number' &&
    typeof r.statuses === 'object' &&
    typeof r.errors === 'object' &&
    typeof r.latencyMs === 'object' &&
    typeof r.headersMs === 'object'
  );
}

export function runClient(args: string[], timeoutMs: number): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLIENT, ...args], { timeout: timeoutMs, maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null) return reject(new Error(`load-client ${args[0]}: ${err.message} ${stderr}`));
      if (stderr !== '') console.error(stderr.trim());
      let parsed: unknown;
      try {
        parsed = JSON.parse(stdout.trim().split('\n').pop() ?? '');
      } catch {
        parsed = undefined;
      }
      if (!isLoadResult(parsed)) return reject(new Error(`load-client ${args[0]} printed no result: ${stdout.slice(0, 500)}`));
      resolve(parsed);
    });
  });
}

/**
 * Builds the agent as the image runs it (`npm run build`: one bundled file,
 * dist/mirra.mjs, no type stripping, which costs about 29 MiB of RSS) and
 * returns its entry point.
 */
export function buildAgent(): Promise<string> {
  return buildBundle(fileURLToPath(new URL('../../dist', import.meta.url)));
}

const CHART_VALUES = fileURLToPath(new URL('../../deploy/charts/mirra/values.yaml', import.meta.url));

/**
 * --max-rss as 'auto' resolves it in the chart's container (a share of
 * resources.limits.memory); there is no cgroup limit here.
 */
export async function chartMaxRss(): Promise<string> {
  const values: unknown = load(await readFile(CHART_VALUES, 'utf8'));
  const resources = values !== null && typeof values === 'object' && 'resources' in values ? values.resources : undefined;
  const limits = resources !== null && typeof resources === 'object' && 'limits' in resources ? resources.limits : undefined;
  const memory = limits !== null && typeof limits === 'object' && 'memory' in limits ? limits.memory : undefined;
  if (typeof memory !== 'string') throw new Error('no resources.limits.memory in deploy/charts/mirra/values.yaml');
  return `${Math.floor((parseByteSize(memory) * MEMORY_LIMIT_SHARE) / 1024)}Ki`;
}

/**
 * The agent's environment as the chart deploys it: NODE_OPTIONS (values.yaml
 * `nodeOptions`, or MIRRA_LOAD_AGENT_NODE_OPTIONS) and MALLOC_TRIM_THRESHOLD_
 * (`mallocTrimThreshold`), plus MIRRA_LOAD_AGENT_ENV (`NAME=value ...`, for
 * diagnosis).
 */
export async function chartAgentEnv(): Promise<NodeJS.ProcessEnv> {
  const values = await readFile(CHART_VALUES, 'utf8');
  const trim = /^mallocTrimThreshold: "([^"]*)"$/m.exec(values)?.[1] ?? '';
  const env: NodeJS.ProcessEnv = { NODE_OPTIONS: process.env.MIRRA_LOAD_AGENT_NODE_OPTIONS ?? (await chartNodeOptions()) };
  if (trim !== '') env.MALLOC_TRIM_THRESHOLD_ = trim;
  for (const pair of (process.env.MIRRA_LOAD_AGENT_ENV ?? '').split(' ').filter((p) => p !== '')) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new Error(`MIRRA_LOAD_AGENT_ENV: ${JSON.stringify(pair)} is not NAME=value`);
    env[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return env;
}

/** The agent's NODE_OPTIONS as the chart deploys it (values.yaml `nodeOptions`). */
export async function chartNodeOptions(): Promise<string> {
  const values = await readFile(CHART_VALUES, 'utf8');
  const match = /^nodeOptions: "([^"]*)"$/m.exec(values);
  if (match === null) throw new Error('no nodeOptions in deploy/charts/mirra/values.yaml');
  return match[1] ?? '';
}

/** A /proc/<pid>/status field in bytes (VmRSS, VmHWM), or 0. */
/**
 * How long an agent must sit quiet before its idle RSS is read: its idle
 * collection (internal/memory/idle-collect.ts) comes after 10 s without a
 * request, checked every 2.5 s.
 */
const IDLE_SETTLE_MS = 13_000;

/** The agent's RSS once it has been idle (no request) long enough for its idle collection. */
export async function idleRssBytes(pid: number): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, IDLE_SETTLE_MS));
  return procStatusBytes(pid, 'VmRSS');
}

export async function procStatusBytes(pid: number, field: string): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return match === null ? 0 : Number(match[1]) * 1024;
}

const count = (record: Record<string, number>): number => Object.values(record).reduce((a, b) => a + b, 0);

/** Requests that got neither 200 nor 503. */
export function non503Errors(result: LoadResult): number {
  const otherStatuses = Object.entries(result.statuses).filter(([status]) => status !== '200' && status !== '503');
  return count(result.errors) + otherStatuses.reduce((sum, [, n]) => sum + n, 0) + result.skipped;
}

/** Named samples of a Prometheus text exposition (no labels needed here). */
export function metricValues(text: string, names: readonly string[]): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [name, value] = line.split(' ');
    if (name !== undefined && value !== undefined && names.includes(name)) values.set(name, Number(value));
  }
  return values;
}
