// What `npm start` prints about the pulls, as short aligned tables: each
// pull's time and speedup against the first node's pull from the upstream,
// and per blob where each node's bytes came from (demo-accounting.ts), with
// the check that every byte is accounted for and that the upstream sent the
// image once.
import { receivedBytes, type BlobAccount, type Origin } from './demo-accounting.ts';

/** One node's pull: how long it took and where each blob came from. */
export interface PullReport {
  node: string;
  ms: number;
  accounts: BlobAccount[];
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Rows of cells, each column as wide as its widest cell, two spaces apart, indented. */
export function table(rows: readonly (readonly string[])[], indent = '  '): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => `${indent}${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ')}`.trimEnd());
}

function originLabel(origin: Origin): string {
  if (origin.kind !== 'peer') return origin.kind;
  return `${origin.node} ${origin.redirected ? '(307)' : '(agent)'}`;
}

/** One cell: the origin alone when it gave everything, else each origin with its bytes; a gap or excess is named. */
function sourceCell(account: BlobAccount): string {
  const { received, blob } = account;
  const got = receivedBytes(account);
  const only = received.length === 1 && got === blob.size ? received[0] : undefined;
  const parts = only !== undefined ? [originLabel(only.origin)] : received.map((r) => `${originLabel(r.origin)} ${formatBytes(r.bytes)}`);
  if (got < blob.size) parts.push(`${formatBytes(blob.size - got)} not accounted for`);
  if (got > blob.size) parts.push(`(${formatBytes(got - blob.size)} more than its size)`);
  return parts.join(' + ');
}

/** Where the node's bytes came from in all, e.g. "node-1 80.0 MiB". */
function pullSources(pull: PullReport): string {
  const byOrigin = new Map<string, number>();
  for (const account of pull.accounts) {
    for (const r of account.received) {
      const key = r.origin.kind === 'peer' ? r.origin.node : r.origin.kind;
      byOrigin.set(key, (byOrigin.get(key) ?? 0) + r.bytes);
    }
  }
  return [...byOrigin].map(([origin, bytes]) => `${origin} ${formatBytes(bytes)}`).join(', ');
}

/** Each pull's time, its speedup against the first, and where its bytes came from in all. */
export function pullLines(pulls: readonly PullReport[]): string[] {
  const first = pulls[0];
  return table(
    pulls.map((pull, i) => [
      pull.node,
      `${(pull.ms / 1000).toFixed(2)} s`,
      i === 0 || first === undefined ? 'from the upstream' : `${(first.ms / pull.ms).toFixed(1)}x faster`,
      pullSources(pull),
    ]),
  );
}

/** Per blob, one column per node: where its bytes came from. */
export function sourceLines(pulls: readonly PullReport[]): string[] {
  const blobs = pulls[0]?.accounts.map((account) => account.blob) ?? [];
  const header = ['', 'size', ...pulls.map((pull) => pull.node)];
  const rows = blobs.map((blob, i) => [blob.label, formatBytes(blob.size), ...pulls.map((pull) => (pull.accounts[i] ? sourceCell(pull.accounts[i]) : '-'))]);
  return table([header, ...rows]);
}

/** Bytes the upstream sent over all pulls. */
export function upstreamBytes(pulls: readonly PullReport[]): number {
  let sum = 0;
  for (const pull of pulls) for (const account of pull.accounts) for (const r of account.received) if (r.origin.kind === 'upstream') sum += r.bytes;
  return sum;
}
