// Where each byte of one node's pull came from, worked out from what the pull
// left behind: the access-log lines every agent wrote during it and the
// requests the upstream's counting proxy saw. containerd on a node asks its
// own agent first (hosts.toml), which answers from the node's store (source
// local), streams the content from a peer (source peer, `peer` the holder's
// pod), answers 307 to the holder's agent (blobs of 16 MiB or more: the bytes
// then show in the holder's log as a peer request for that digest), or 404,
// and containerd gets it from the upstream. Pulls are made one after another,
// so every line of the window belongs to that pull.
import type { CountedRequest } from '../tests/support/upstream.ts';

/** One piece of content of the image, as containerd fetches it. */
export interface ImageBlob {
  /** manifest, config, layer 1, ... */
  label: string;
  digest: string;
  size: number;
}

/** Where bytes came from: the upstream, the node's own store, or a peer's agent (through the node's agent, or redirected to it). */
export type Origin = { kind: 'upstream' } | { kind: 'local' } | { kind: 'peer'; node: string; redirected: boolean };

export interface Received {
  origin: Origin;
  bytes: number;
}

export interface BlobAccount {
  blob: ImageBlob;
  /** The blob's bytes by origin, as containerd received them; they add up to its size when every byte is accounted for. */
  received: Received[];
}

/** An access-log line, narrowed to what the accounting reads. */
export interface AccessRecord {
  status: number;
  method: string;
  /** Path only. */
  url: string;
  source: string;
  /** The holder's pod, when source is peer. */
  peer: string | undefined;
  /** A request from another agent (or a containerd redirected to this agent). */
  fromPeer: boolean;
  bytesSent: number;
}

/** What one pull left behind. */
export interface PullWindow {
  /** The pulling node. */
  node: string;
  /** Each agent's access lines written during the pull, by node name. */
  lines: ReadonlyMap<string, readonly AccessRecord[]>;
  /** The upstream's requests during the pull. */
  upstream: readonly CountedRequest[];
  /** A pod's node, from the harness. */
  nodeOfPod(pod: string): string | undefined;
}

/** An access-log line (parsed JSON) as an AccessRecord; undefined for other log lines. */
export function accessRecord(line: Readonly<Record<string, unknown>>): AccessRecord | undefined {
  const { status, method, url, source, peer, fromPeer, bytesSent, handler } = line;
  if (handler !== 'blob' && handler !== 'manifest') return undefined;
  if (typeof status !== 'number' || typeof method !== 'string' || typeof url !== 'string' || typeof source !== 'string') return undefined;
  return {
    status,
    method,
    url,
    source,
    peer: typeof peer === 'string' ? peer : undefined,
    fromPeer: fromPeer === true,
    bytesSent: typeof bytesSent === 'number' ? bytesSent : 0,
  };
}

const delivered = (status: number): boolean => status === 200 || status === 206;
const names = (url: string, digest: string): boolean => url.split('?')[0]?.endsWith(`/${digest}`) === true;

function add(received: Received[], origin: Origin, bytes: number): void {
  if (bytes <= 0) return;
  const same = received.find((r) => JSON.stringify(r.origin) === JSON.stringify(origin));
  if (same !== undefined) same.bytes += bytes;
  else received.push({ origin, bytes });
}

/** The bytes the holder sent for the digest to peers during the window: a redirected containerd, or the pulling agent. */
function holderBytes(window: PullWindow, holder: string, digest: string): number {
  const lines = window.lines.get(holder) ?? [];
  return lines.filter((l) => l.fromPeer && l.method === 'GET' && delivered(l.status) && names(l.url, digest)).reduce((sum, l) => sum + l.bytesSent, 0);
}

/** Where the pulling node's containerd got the blob's bytes during the window. */
export function accountBlob(window: PullWindow, blob: ImageBlob): BlobAccount {
  const received: Received[] = [];
  const own = (window.lines.get(window.node) ?? []).filter((l) => !l.fromPeer && l.method === 'GET' && names(l.url, blob.digest));
  const redirectedTo = new Set<string>();
  for (const line of own) {
    const peerNode = line.peer === undefined ? undefined : (window.nodeOfPod(line.peer) ?? line.peer);
    if (line.status === 307 && peerNode !== undefined) redirectedTo.add(peerNode);
    if (!delivered(line.status)) continue;
    if (line.source === 'peer' && peerNode !== undefined) add(received, { kind: 'peer', node: peerNode, redirected: false }, line.bytesSent);
    else add(received, { kind: 'local' }, line.bytesSent);
  }
  for (const holder of redirectedTo) {
    // The holder's log has the redirected bytes and any this node's agent streamed from it: those are counted above.
    const streamed = received.find((r) => r.origin.kind === 'peer' && r.origin.node === holder)?.bytes ?? 0;
    add(received, { kind: 'peer', node: holder, redirected: true }, holderBytes(window, holder, blob.digest) - streamed);
  }
  const upstream = window.upstream.filter((r) => r.method === 'GET' && delivered(r.status) && names(r.path, blob.digest));
  add(
    received,
    { kind: 'upstream' },
    upstream.reduce((sum, r) => sum + r.bytes, 0),
  );
  return { blob, received };
}

/** Bytes received for the blob in all. */
export function receivedBytes(account: BlobAccount): number {
  return account.received.reduce((sum, r) => sum + r.bytes, 0);
}

/** Whether each blob's bytes add up to its size exactly. */
export function everyByteAccounted(accounts: readonly BlobAccount[]): boolean {
  return accounts.every((account) => receivedBytes(account) === account.blob.size);
}
