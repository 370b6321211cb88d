// `mirra shards` and `mirra locate` as rows and text: per agent, its
// endpoint's readiness, the shards it owns by the ownership table computed
// from the ready endpoints (what the agents compute), and what its status
// annotations last said (keys, postings, its own count of owned shards); per
// key, the agents its shard's owners named.
import type { OwnershipTable } from '../owners/ownership.ts';
import { OWNER_REPLICAS, OWNER_SHARDS } from '../owners/protocol.ts';
import { readyMembers, type Endpoints } from './endpoints.ts';
import type { Located, OwnerAnswer } from './locate.ts';
import type { AgentPod } from './pods.ts';

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export interface ShardsRow {
  node: string;
  pod: string;
  /** The pod's endpoint is ready in the Service's EndpointSlices: it is a member and owns shards. */
  ready: boolean;
  /** Keys the agent holds, from its status annotation. */
  keys: number | null;
  /** Shards it owns by the computed table. */
  owned: number;
  ownedShards: number[];
  /** Shards it owns by its own status annotation (written only on change, at most every --status-interval). */
  publishedOwned: number | null;
  /** (key, holder) pairs it keeps as an owner, from its status annotation. */
  postings: number | null;
  /** Ready members in its own table, from its status annotation. */
  publishedMembers: number | null;
  updated: string | null;
  /** Why there is no readable status (or no pod), when there is none. */
  error: string | null;
}

/** A row for an endpoint whose pod the selector did not list. */
function endpointOnlyRow(name: string, endpoints: Endpoints, ownership: OwnershipTable): ShardsRow {
  const endpoint = endpoints.get(name);
  const ownedShards = [...ownership.ownedBy(name)];
  return {
    node: endpoint?.nodeName ?? '',
    pod: name,
    ready: endpoint?.ready ?? false,
    keys: null,
    owned: ownedShards.length,
    ownedShards,
    publishedOwned: null,
    postings: null,
    publishedMembers: null,
    updated: null,
    error: 'in the EndpointSlices, but no pod matches --selector',
  };
}

/** One row per agent pod, and per endpoint whose pod was not listed; by node and name. */
export function shardsRows(pods: readonly AgentPod[], endpoints: Endpoints, ownership: OwnershipTable): ShardsRow[] {
  const rows = pods.map((pod): ShardsRow => {
    const ownedShards = [...ownership.ownedBy(pod.name)];
    return {
      node: pod.nodeName,
      pod: pod.name,
      ready: endpoints.get(pod.name)?.ready ?? false,
      keys: pod.status?.keys ?? null,
      owned: ownedShards.length,
      ownedShards,
      publishedOwned: pod.status?.owned.length ?? null,
      postings: pod.status?.postings ?? null,
      publishedMembers: pod.status?.members ?? null,
      updated: pod.updated ?? null,
      error: pod.statusError ?? null,
    };
  });
  const listed = new Set(pods.map((pod) => pod.name));
  for (const name of endpoints.keys()) if (!listed.has(name)) rows.push(endpointOnlyRow(name, endpoints, ownership));
  return rows.sort((a, b) => a.node.localeCompare(b.node) || a.pod.localeCompare(b.pod));
}

function ownedCell(row: ShardsRow): string {
  if (row.publishedOwned === null || row.publishedOwned === row.owned) return String(row.owned);
  return `${row.owned} (pod says ${row.publishedOwned})`;
}

/** The table, and a last line on the membership the ownership was computed from. */
export function renderShards(rows: readonly ShardsRow[], endpoints: Endpoints, serviceName: string): string {
  const text = table(
    ['NODE', 'POD', 'READY', 'KEYS', 'OWNED', 'POSTINGS', 'LAST UPDATE'],
    rows.map((r) => [
      r.node === '' ? '-' : r.node,
      r.pod,
      String(r.ready),
      r.keys === null ? '-' : String(r.keys),
      ownedCell(r),
      r.postings === null ? '-' : String(r.postings),
      r.error ?? r.updated ?? '-',
    ]),
  );
  const members = readyMembers(endpoints).length;
  const footer =
    members === 0
      ? `no ready endpoint in the EndpointSlices of service ${serviceName}: no shard has an owner`
      : `${members} ready of ${endpoints.size} endpoints of service ${serviceName}; ${OWNER_SHARDS} shards, ${Math.min(OWNER_REPLICAS, members)} owners each`;
  return `${text}\n\n${footer}`;
}

export interface LocateRow {
  node: string;
  pod: string;
  /** The holder's endpoint is ready. */
  ready: boolean;
}

export interface LocateReport {
  key: string;
  shard: number;
  owners: string[];
  answers: OwnerAnswer[];
  agents: LocateRow[];
}

/** The holders with their node and readiness from the EndpointSlices, in the owners' order. */
export function locateReport(located: Located, endpoints: Endpoints): LocateReport {
  const agents = located.holders.map((pod) => {
    const endpoint = endpoints.get(pod);
    return { node: endpoint?.nodeName ?? '', pod, ready: endpoint?.ready ?? false };
  });
  return { key: located.key, shard: located.shard, owners: located.owners, answers: located.answers, agents };
}

export function renderLocate(report: LocateReport): string {
  if (report.agents.length === 0) return `no agent holds ${report.key}`;
  return table(
    ['NODE', 'POD', 'READY'],
    report.agents.map((r) => [r.node === '' ? '-' : r.node, r.pod, String(r.ready)]),
  );
}
