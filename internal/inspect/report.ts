// `mirra shards` and `mirra locate`: what each agent advertises, and which
// agents claim a key, decoded from the pods' annotations.
import type { Hasher } from '../routing/hash.ts';
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
  ready: boolean;
  keys: number | null;
  shards: number | null;
  mode: string | null;
  bytes: number;
  bytesPerKey: number | null;
  generation: number | null;
  updated: string | null;
  error: string | null;
}

export function shardsRows(pods: AgentPod[]): ShardsRow[] {
  return pods.map((pod) => {
    const header = pod.summary?.header;
    return {
      node: pod.nodeName,
      pod: pod.name,
      ready: pod.ready,
      keys: header?.keys ?? null,
      shards: header?.shards ?? null,
      mode: header?.mode ?? null,
      bytes: pod.summaryBytes,
      bytesPerKey: header !== undefined && header.keys > 0 ? pod.summaryBytes / header.keys : null,
      generation: header?.generation ?? null,
      updated: pod.updated ?? null,
      error: pod.summaryError ?? (header === undefined ? 'no summary published' : null),
    };
  });
}

export function renderShards(rows: ShardsRow[]): string {
  return table(
    ['NODE', 'POD', 'READY', 'KEYS', 'SHARDS', 'BYTES', 'BYTES/KEY', 'GENERATION', 'LAST UPDATE'],
    rows.map((r) => [
      r.node,
      r.pod,
      String(r.ready),
      r.keys === null ? '-' : String(r.keys),
      r.shards === null ? '-' : r.mode === 'all' ? 'all (saturated)' : String(r.shards),
      String(r.bytes),
      r.bytesPerKey === null ? '-' : r.bytesPerKey.toFixed(2),
      r.generation === null ? '-' : String(r.generation),
      r.error ?? r.updated ?? '-',
    ]),
  );
}

export interface LocateRow {
  node: string;
  pod: string;
  ready: boolean;
}

/** The agents whose summary claims the key (a claim can be a false positive, about 1%). */
export function locate(pods: AgentPod[], key: string, hasher: Hasher): LocateRow[] {
  const hash = hasher.hash(key);
  return pods.filter((pod) => pod.summary?.has(hash) === true).map((pod) => ({ node: pod.nodeName, pod: pod.name, ready: pod.ready }));
}

export function renderLocate(key: string, rows: LocateRow[]): string {
  if (rows.length === 0) return `no agent claims ${key}`;
  return table(
    ['NODE', 'POD', 'READY'],
    rows.map((r) => [r.node, r.pod, String(r.ready)]),
  );
}
