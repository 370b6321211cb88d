// What the soak prints at the end: the faults by kind, the retries by cause,
// each agent's descriptors and memory, and, when something failed, the seed
// and how to replay it, the fault timeline and, per failing pull, its
// attempts and the log lines of the agents and the node's containerd around
// it. The last line is the JSON summary.
import { readFile } from 'node:fs/promises';
import type { Cluster } from '../cluster/cluster.ts';
import type { Incarnation } from './agent-resources.ts';
import { FAULT_KINDS, type FaultEvent } from './faults.ts';
import type { PullRecord } from './pull.ts';

const MiB = 1024 * 1024;
const MAX_LOG_LINES = 60;
const MAX_LINE_CHARS = 400;

export interface SoakSummary {
  bench: 'soak';
  seed: string;
  seconds: number;
  pulls: number;
  failed_pulls: number;
  corrupt: number;
  retries: number;
  faults: number;
  max_pull_s: number;
  bound_s: number;
  fd_growth: number;
  socket_growth: number;
  peak_rss_mb: number;
  /** The highest RssAnon sample of any agent (RSS less the file pages: the binary's, which a cgroup can reclaim). */
  peak_anon_mb: number;
  /** 503s answered before any route (the agent shedding load: memory or event-loop pressure), over all agents. */
  shed_503: number;
  problems: number;
}

export interface SoakOutcome {
  seed: string;
  seconds: number;
  boundMs: number;
  startedAt: number;
  records: readonly PullRecord[];
  events: readonly FaultEvent[];
  incarnations: readonly Incarnation[];
  /** Per node, the final descriptors against the current agent's baseline. */
  growth: ReadonlyArray<{ node: string; fds: number; sockets: number }>;
  /** Per node, the agents' 503s before any route and their longest stretch (answers less than 2 s apart). */
  shedding: ReadonlyArray<Shedding>;
  problems: readonly string[];
}

export interface Shedding {
  node: string;
  count: number;
  longest: { from: number; to: number; count: number } | undefined;
}

export const FD_GROWTH_LIMIT = 5;
export const RSS_LIMIT_MB = 192;

export function summarize(outcome: SoakOutcome): SoakSummary {
  const { records } = outcome;
  const done = records.filter((r) => r.outcome !== 'running');
  const seconds = (ms: number): number => Math.round(ms / 100) / 10;
  return {
    bench: 'soak',
    seed: outcome.seed,
    seconds: outcome.seconds,
    pulls: done.length,
    failed_pulls: done.filter((r) => r.outcome === 'failed').length,
    corrupt: done.filter((r) => r.outcome === 'corrupt').length,
    retries: done.reduce((sum, r) => sum + Math.max(0, r.attempts.length - 1), 0),
    faults: outcome.events.length,
    max_pull_s: seconds(done.reduce((max, r) => Math.max(max, r.endedAt - r.startedAt), 0)),
    bound_s: outcome.boundMs / 1000,
    fd_growth: outcome.growth.reduce((max, g) => Math.max(max, g.fds), 0),
    socket_growth: outcome.growth.reduce((max, g) => Math.max(max, g.sockets), 0),
    peak_rss_mb: Math.round((outcome.incarnations.reduce((max, i) => Math.max(max, i.peakRssBytes), 0) / MiB) * 10) / 10,
    peak_anon_mb: Math.round((outcome.incarnations.reduce((max, i) => Math.max(max, i.peakAnonBytes), 0) / MiB) * 10) / 10,
    shed_503: outcome.shedding.reduce((sum, s) => sum + s.count, 0),
    problems: outcome.problems.length,
  };
}

/** Why the run failed; [] when it passed. */
export function failures(summary: SoakSummary, outcome: SoakOutcome): string[] {
  const out: string[] = [];
  if (summary.failed_pulls > 0) out.push(`${summary.failed_pulls} pulls failed`);
  if (summary.corrupt > 0) out.push(`${summary.corrupt} pulls stored content that does not match its digests`);
  if (summary.fd_growth > FD_GROWTH_LIMIT) out.push(`an agent holds ${summary.fd_growth} more descriptors than at its start (limit ${FD_GROWTH_LIMIT})`);
  if (summary.peak_rss_mb >= RSS_LIMIT_MB) out.push(`an agent's RSS reached ${summary.peak_rss_mb} MiB (the chart's limit: ${RSS_LIMIT_MB}Mi)`);
  if (summary.pulls === 0) out.push('no pull completed');
  out.push(...outcome.problems);
  return out;
}

/** A retry's cause without what varies between pulls (digests, ports, refs), to group them. */
function causeKey(error: string): string {
  return error
    .replace(/sha256:[0-9a-f]{64}/g, 'sha256:…')
    .replace(/127\.0\.0\.\d+:\d+/g, 'HOST')
    .replace(/soak\/[a-z]+:v\d/g, 'IMAGE')
    .replace(/"[^"]*\/(ingest|blobs)\/[^"]*"/g, '"PATH"')
    .slice(0, 220);
}

/** An agent's memory peak: VmHWM, the highest RssAnon, and at the highest VmRSS sample its parts and (above 150 MiB) the heap and external memory. */
function peakText(inc: Incarnation, at: (ms: number) => string): string {
  const mib = (bytes: number): string => (bytes / MiB).toFixed(1);
  const peak = inc.peak;
  const metrics = peak === undefined || Number.isNaN(peak.heapUsedBytes) ? '' : `, heap used ${mib(peak.heapUsedBytes)}, external ${mib(peak.externalBytes)}`;
  const sample =
    peak === undefined
      ? ''
      : `; highest sample ${mib(peak.rssBytes)} MiB at ${at(peak.at)}: anon ${mib(peak.anonBytes)}, file ${mib(peak.fileBytes)}${metrics}`;
  return `peak RSS ${mib(inc.peakRssBytes)} MiB, anon ${mib(inc.peakAnonBytes)} MiB${sample}`;
}

export function summaryLines(outcome: SoakOutcome): string[] {
  const lines: string[] = [];
  const at = (ms: number): string => `${((ms - outcome.startedAt) / 1000).toFixed(1)} s`;
  const byKind = FAULT_KINDS.map((kind) => [kind, outcome.events.filter((e) => e.kind === kind).length] as const).filter(([, n]) => n > 0);
  lines.push(`faults: ${byKind.map(([kind, n]) => `${kind} ${n}`).join(', ') || 'none'}`);
  const causes = new Map<string, number>();
  for (const r of outcome.records)
    for (const a of r.attempts) if (a.error !== undefined) causes.set(causeKey(a.error), (causes.get(causeKey(a.error)) ?? 0) + 1);
  lines.push(`retried pull errors by cause (${[...causes.values()].reduce((a, b) => a + b, 0)}):`);
  for (const [cause, n] of [...causes].sort((a, b) => b[1] - a[1])) lines.push(`  ${String(n).padStart(4)}  ${cause}`);
  const shed = sheddingLines(outcome);
  lines.push(`agents shedding load (503 before routing: memory or event-loop pressure): ${shed.length === 0 ? 'none' : ''}`, ...shed);
  lines.push('agents (descriptors and sockets: baseline -> end of run, per process; RSS peak):');
  for (const inc of outcome.incarnations) {
    const h = (x: { fds: number; sockets: number } | undefined): string => (x === undefined ? '?' : `${x.fds} fds/${x.sockets} sockets`);
    lines.push(`  ${inc.node} pid ${inc.pid} from ${at(inc.seenAt)}: ${h(inc.baseline)} -> ${h(inc.last)}, ${peakText(inc, at)}`);
  }
  return lines;
}

/** The 503s the node's agents answered before routing (shedding), from its access log, and their longest stretch. */
export async function sheddingOf(logFile: string, node: string): Promise<Shedding> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  const times = text
    .split('\n')
    .filter((line) => line.includes('"status":503') && line.includes('"handler":"unknown"'))
    .map(lineTime)
    .filter((t) => Number.isFinite(t));
  let longest: Shedding['longest'];
  let current: Shedding['longest'];
  for (const t of times) {
    current = current !== undefined && t - current.to < 2000 ? { ...current, to: t, count: current.count + 1 } : { from: t, to: t, count: 1 };
    if (longest === undefined || current.to - current.from > longest.to - longest.from) longest = current;
  }
  return { node, count: times.length, longest };
}

function sheddingLines(outcome: SoakOutcome): string[] {
  const at = (ms: number): string => `${((ms - outcome.startedAt) / 1000).toFixed(1)} s`;
  return outcome.shedding
    .filter((s) => s.count > 0)
    .map((s) => {
      const l = s.longest;
      return `  ${s.node}: ${s.count} answered 503 before routing${l === undefined ? '' : `; longest stretch ${((l.to - l.from) / 1000).toFixed(1)} s (${l.count} answers, ${at(l.from)} to ${at(l.to)})`}`;
    });
}

function timeline(outcome: SoakOutcome): string[] {
  const at = (ms: number | undefined): string => (ms === undefined ? '…' : ((ms - outcome.startedAt) / 1000).toFixed(1));
  return outcome.events.map((e) => `  #${e.id} ${at(e.startedAt)}-${at(e.endedAt)} s ${e.kind} ${e.target}: ${e.detail}`);
}

/** A log line's time, ms since the epoch (the agent's JSON `time`, a number or ISO; containerd's `time="..."`), or NaN. */
function lineTime(line: string): number {
  const match = /"time":(\d+)/.exec(line) ?? /"time":"([^"]+)"/.exec(line) ?? /time="([^"]+)"/.exec(line);
  if (match === null) return NaN;
  const value = match[1] ?? '';
  return /^\d+$/.test(value) ? Number(value) : Date.parse(value);
}

/** Lines of a log file within [from, to] that mention one of `needles` (or, for `warnings`, are warnings or errors). */
async function logLines(file: string, window: { from: number; to: number }, match: (line: string) => boolean): Promise<string[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter((line) => {
    const t = lineTime(line);
    return t >= window.from && t <= window.to && match(line);
  });
}

/** The failing pull, its attempts, and the log lines of the agents and the node's containerd around it. */
async function pullReport(cluster: Cluster, outcome: SoakOutcome, record: PullRecord): Promise<string[]> {
  const at = (ms: number): string => `${((ms - outcome.startedAt) / 1000).toFixed(1)} s`;
  const lines = [
    `pull #${record.id}: ${record.node} ${record.image.name} from ${at(record.startedAt)} to ${at(record.endedAt)}: ${record.outcome}, ${record.problem ?? ''}`,
  ];
  for (const a of record.attempts) lines.push(`  attempt at ${at(a.at)}, ${(a.ms / 1000).toFixed(1)} s: ${a.error ?? 'completed'}`);
  const digests = record.image.blobs.map((b) => b.digest.slice('sha256:'.length, 'sha256:'.length + 16));
  const window = { from: record.startedAt - 1000, to: record.endedAt + 1000 };
  const mentions = (line: string): boolean => digests.some((d) => line.includes(d)) || line.includes(record.image.name.split(':')[0] ?? '');
  const warns = (line: string): boolean => /"level":(4|5)\d/.test(line);
  for (const node of cluster.nodes) {
    const own = node.name === record.node;
    const found = await logLines(node.agent.logFile, window, (line) => (own ? mentions(line) || warns(line) : mentions(line) && warns(line)));
    if (found.length > 0) lines.push(`  ${node.name}'s agent (${found.length} lines${found.length > MAX_LOG_LINES ? `, the last ${MAX_LOG_LINES}` : ''}):`);
    for (const line of found.slice(-MAX_LOG_LINES)) lines.push(`    ${line.slice(0, MAX_LINE_CHARS)}`);
  }
  const node = cluster.nodes.find((n) => n.name === record.node);
  if (node !== undefined) {
    const found = await logLines(node.containerd.logFile, window, (line) => /level=(error|warning)/.test(line));
    if (found.length > 0) lines.push(`  ${node.name}'s containerd (warnings and errors):`);
    for (const line of found.slice(-20)) lines.push(`    ${line.slice(0, MAX_LINE_CHARS)}`);
  }
  return lines;
}

/** The failure report: why, the seed and the replay command, the timeline, the failing pulls (the first five). */
export async function failureReport(cluster: Cluster, outcome: SoakOutcome, reasons: readonly string[]): Promise<string[]> {
  const lines = [
    `soak FAILED (seed ${outcome.seed}):`,
    ...reasons.map((r) => `  - ${r}`),
    `replay: MIRRA_SOAK_SEED=${outcome.seed} MIRRA_SOAK_SECONDS=${outcome.seconds} npm run soak`,
    'fault timeline (s since the start):',
    ...timeline(outcome),
  ];
  const failing = outcome.records.filter((r) => r.outcome === 'failed' || r.outcome === 'corrupt').slice(0, 5);
  for (const record of failing) lines.push(...(await pullReport(cluster, outcome, record)));
  return lines;
}
