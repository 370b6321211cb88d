// `npm run bench:p2p`: 5 nodes (and 2 for chunked fetch) on the local cluster harness, the upstream
// limited to 20 MB/s like a remote registry, a 500 MiB image. Every pull goes
// through containerd's CRI plugin (ImageService.PullImage), as the kubelet's
// do: containerd fetches and unpacks in the daemon, its registries from the
// node's hosts dir (the upstream alone for the baseline, the agent first for
// mirra).
//  - without mirra: one node pulls straight from upstream, then 4 nodes at once;
//  - with mirra: each node pulls in turn (the first from upstream, the rest from
//    peers), then 4 nodes pull a second image at once that one node has.
// Then a cold wave: the 5 nodes, none with it, pull a third 500 MiB image at
// the same moment: the upstream bytes per image byte (cold_upstream_bytes_ratio:
// one fetch per blob, the others stream it from the fetcher's ingest) and the
// slowest of the 5 pulls over one node pulling alone from the upstream
// (cold_slowest_vs_single).
// Then containerd 2.1's chunked layer fetch (the transfer service's
// concurrent_layer_fetch_buffer, 16 MiB, 3 downloads) on two more nodes that
// take no part in the rest: a 256 MiB layer only node-1 has, pulled by node-6
// (chunked) and node-7 (not chunked), in turn, 5 rounds: the bytes node-1 sent
// node-6 per layer byte (chunked_peer_bytes_ratio) and node-6's pull time over
// node-7's (chunked_time_ratio, medians).
// Last, one blob stream from a peer against one from the node's own files,
// same 256 MiB blob (a redirect costs a lookup, a HEAD and a second connection: a few ms, a tenth of a 128 MiB stream at 2.5 GB/s), 3 blobs only node-1 has, node-7's agent finding them on
// node-1 (peer_stream_vs_local: the ratio of the medians; blobs of 16 MiB and
// more are redirected to the holder, internal/peer/redirect-path.ts).
// The agents run as the image runs them (bundled, the chart's NODE_OPTIONS).
// Prints the time of every pull and the upstream bytes, then one JSON line.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { startCluster, type Cluster, type ClusterNode } from '../cluster/cluster.ts';
import { holdersOf } from '../cluster/holders.ts';
import { blobUrlOn, waitUntilServed } from '../cluster/served.ts';
import { createHasher } from '../../internal/routing/hash.ts';
import { writeMirrorHosts, writeUpstreamHosts } from '../support/hosts.ts';
import { generateImage } from '../support/image.ts';
import { waitFor } from '../support/process.ts';
import { buildAgent, chartAgentEnv } from './load-support.ts';
import { mean, median, percentile } from './stats.ts';

const MiB = 1024 * 1024;
const UPSTREAM_BYTES_PER_SEC = 20e6;
const LAYERS = [100, 100, 100, 100, 100].map((n) => n * MiB);
const CHUNK_BYTES = 16 * MiB;
const CHUNKED_LAYER_BYTES = 256 * MiB;
const CHUNK_ROUNDS = 5;
const STREAM_LAYERS = [256, 256, 256].map((n) => n * MiB);

/**
 * Times one pull (or several at once). The nodes share this machine's disk:
 * what earlier pulls wrote is flushed first (`sync`, untimed), as each real
 * node's disk would not be busy with the other nodes' writes.
 */
async function timedPull(pull: () => Promise<unknown>): Promise<number> {
  await flushDisk();
  const start = performance.now();
  await pull();
  return (performance.now() - start) / 1000;
}

function flushDisk(): Promise<void> {
  return new Promise((resolve, reject) => execFile('sync', (err) => (err === null ? resolve() : reject(new Error(`sync: ${err.message}`, { cause: err })))));
}

/** The node has no image any more (the CRI names each image three ways), and no content of it. */
async function forget(node: ClusterNode): Promise<void> {
  await node.containerd.removeAllImages();
}

/** p99 in ms of sequential GETs of blobs no node has: the 404 that sends containerd upstream. */
async function missP99Ms(agentUrl: string, ns: string): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const one = (digest: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const start = performance.now();
      const req = request(`${agentUrl}/v2/bench/p2p/blobs/${digest}?ns=${encodeURIComponent(ns)}`, { agent }, (res) => {
        res.resume();
        res.once('end', () => (res.statusCode === 404 ? resolve(performance.now() - start) : reject(new Error(`miss answered ${res.statusCode}`))));
      });
      req.once('error', reject);
      req.end();
    });
  const latencies: number[] = [];
  for (let i = 0; i < 1100; i++) {
    const ms = await one(`sha256:${createHash('sha256').update(`miss-${i}`).digest('hex')}`);
    if (i >= 100) latencies.push(ms); // the first 100 warm up the connection and the JIT
  }
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return percentile(latencies, 0.99);
}

/** Body bytes the node's agent sent to peers for the digest (its access log). */
async function servedToPeers(node: ClusterNode, digest: string): Promise<number> {
  let sum = 0;
  for (const line of await node.agent.accessLines()) {
    if (line.fromPeer === true && String(line.url).includes(digest)) sum += Number(line.bytesSent ?? 0);
  }
  return sum;
}

interface ChunkedResult {
  chunked: number[];
  plain: number[];
  peerBytesRatio: number;
}

/** The chunked-fetch phase: node-1 holds a 256 MiB layer; `chunked` and `plain` pull it in turn. */
async function chunkedFetch(cluster: Cluster, holder: ClusterNode, nodes: { chunked: ClusterNode; plain: ClusterNode }): Promise<ChunkedResult> {
  const image = await generateImage({ dir: join(cluster.dir, 'img-chunked'), layers: [CHUNKED_LAYER_BYTES], seed: 'bench-p2p-chunked' });
  await cluster.upstream.push(image.layoutDir, 'bench/p2p', 'chunked');
  const ref = `${cluster.upstream.host}/bench/p2p:chunked`;
  const layer = image.layers[0];
  if (layer === undefined) throw new Error('no layer');
  await holder.pull(ref);
  await waitUntilServed(cluster, [nodes.chunked, nodes.plain], { repository: 'bench/p2p', digest: layer.digest });
  const result: ChunkedResult = { chunked: [], plain: [], peerBytesRatio: 0 };
  let peerBytes = 0;
  // In turn, the order alternating (a pull right after the other's removal runs on a busier disk);
  // each node forgets the image after its pull, so node-1 stays the only holder.
  for (let round = 0; round < CHUNK_ROUNDS; round++) {
    for (const node of round % 2 === 0 ? [nodes.chunked, nodes.plain] : [nodes.plain, nodes.chunked]) {
      const before = await servedToPeers(holder, layer.digest);
      const seconds = await timedPull(() => node.pull(ref));
      if (node === nodes.chunked) {
        result.chunked.push(seconds);
        peerBytes += (await servedToPeers(holder, layer.digest)) - before;
      } else result.plain.push(seconds);
      await forget(node);
    }
  }
  result.peerBytesRatio = peerBytes / CHUNK_ROUNDS / layer.size;
  return result;
}

/** MB/s of one download of `url` (following a redirect, as containerd does). */
function curlMBps(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '-f', '-L', '-o', '/dev/null', '-w', '%{size_download} %{time_total}', url], (err, stdout) => {
      if (err !== null) return reject(new Error(`curl ${url}: ${err.message}`, { cause: err }));
      const [bytes, seconds] = stdout.trim().split(' ').map(Number);
      resolve((bytes ?? 0) / 1e6 / (seconds ?? 1));
    });
  });
}

/**
 * One blob stream from a peer against one from the node's own files, same
 * blob: each of STREAM_LAYERS only `holder` has is downloaded (curl, following
 * redirects) from the holder's agent, then from `puller`'s agent, which finds
 * it on the holder. A different blob each round: a blob asked for again soon
 * after its redirect is streamed through the agent (internal/peer/redirect-path.ts).
 */
async function peerStreamVsLocal(cluster: Cluster, holder: ClusterNode, puller: ClusterNode): Promise<{ local: number[]; peer: number[] }> {
  const image = await generateImage({ dir: join(cluster.dir, 'img-stream'), layers: STREAM_LAYERS, seed: 'bench-p2p-stream' });
  await cluster.upstream.push(image.layoutDir, 'bench/p2p', 'stream');
  await holder.pull(`${cluster.upstream.host}/bench/p2p:stream`);
  const result = { local: [] as number[], peer: [] as number[] };
  for (const layer of image.layers) {
    const blob = { repository: 'bench/p2p', digest: layer.digest };
    await waitUntilServed(cluster, [puller], blob);
    await flushDisk();
    result.local.push(await curlMBps(blobUrlOn(cluster, holder, blob)));
    result.peer.push(await curlMBps(blobUrlOn(cluster, puller, blob)));
  }
  return result;
}

interface Measured {
  imageBytes: number;
  baselineOne: number;
  baselineMany: number[];
  sequential: number[];
  sequentialUpstreamBytes: number;
  concurrent: number[];
  concurrentUpstreamBytes: number;
  missP99: number;
  cold: { times: number[]; upstreamBytes: number };
  chunked: ChunkedResult;
  stream: { local: number[]; peer: number[] };
  series: string;
}

/** Without mirra: one node pulls straight from upstream, then 4 at once; the hosts dirs name the upstream alone, then the agents again. */
async function baseline(cluster: Cluster, rest: ClusterNode[], ref: string): Promise<{ one: number; many: number[] }> {
  console.error('without mirra: one pull, then 4 at once, straight from upstream ...');
  await Promise.all(rest.map((node) => writeUpstreamHosts(node.hostsDir, cluster.upstream.host)));
  const one = await timedPull(() => rest[0]!.pull(ref));
  await forget(rest[0]!);
  const many = await Promise.all(rest.map((node) => timedPull(() => node.pull(ref))));
  await Promise.all(rest.map((node) => forget(node)));
  await Promise.all(rest.map((node) => writeMirrorHosts(node.hostsDir, cluster.upstream.host, node.agent.url)));
  return { one, many };
}

/** An image in the upstream: its reference and its layers' digests. */
interface PulledImage {
  ref: string;
  digests: readonly string[];
}

/** With mirra, each node in turn: node-1 from upstream, the rest from peers; the pull times and the upstream bytes. */
async function inTurn(cluster: Cluster, first: ClusterNode, rest: ClusterNode[], image: PulledImage): Promise<{ times: number[]; upstreamBytes: number }> {
  console.error('with mirra: each node in turn ...');
  cluster.upstream.resetCounts();
  const { ref, digests } = image;
  const times = [await timedPull(() => first.pull(ref))];
  const hasher = await createHasher();
  await waitFor(
    'the owners to name node-1 for every layer',
    async () => {
      for (const digest of digests) if (!(await holdersOf(cluster, hasher, digest)).includes(first.name)) return false;
      return true;
    },
    20_000,
    100,
  );
  for (const node of rest) {
    times.push(await timedPull(() => node.pull(ref)));
    await new Promise((resolve) => setTimeout(resolve, 2500)); // let the node advertise what it pulled
  }
  return { times, upstreamBytes: cluster.upstream.counts().bytes };
}

/** With mirra, 4 nodes at once while only node-1 has the image. */
async function atOnce(cluster: Cluster, first: ClusterNode, rest: ClusterNode[], ref: string): Promise<{ times: number[]; upstreamBytes: number }> {
  console.error('with mirra: 4 nodes at once, one node has the image ...');
  await first.pull(ref);
  await new Promise((resolve) => setTimeout(resolve, 2500));
  cluster.upstream.resetCounts();
  const times = await Promise.all(rest.map((node) => timedPull(() => node.pull(ref))));
  return { times, upstreamBytes: cluster.upstream.counts().bytes };
}

/** With mirra, a cold wave: every node at the same moment, none has the image; the times and the upstream bytes. */
async function coldWave(cluster: Cluster, nodes: ClusterNode[], ref: string): Promise<{ times: number[]; upstreamBytes: number }> {
  console.error(`with mirra: a cold wave, ${nodes.length} nodes at once, none has the image ...`);
  await Promise.all(nodes.map((node) => forget(node)));
  await flushDisk();
  cluster.upstream.resetCounts();
  const times = await Promise.all(nodes.map((node) => timedPull(() => node.pull(ref))));
  return { times, upstreamBytes: cluster.upstream.counts().bytes };
}

function report(m: Measured): void {
  const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(0)} MB`;
  const list = (times: number[]): string => times.map((t) => t.toFixed(1)).join(', ');
  console.log(`image ${mb(m.imageBytes)}, upstream limited to ${UPSTREAM_BYTES_PER_SEC / 1e6} MB/s, 5 nodes, pulls through containerd's CRI plugin`);
  console.log('| case | pulls (s) | mean (s) | upstream bytes |');
  console.log('| --- | --- | ---: | ---: |');
  console.log(`| without mirra, one pull | ${m.baselineOne.toFixed(1)} | ${m.baselineOne.toFixed(1)} | ${mb(m.imageBytes)} |`);
  console.log(`| without mirra, 4 at once | ${list(m.baselineMany)} | ${mean(m.baselineMany).toFixed(1)} | ${mb(m.imageBytes * 4)} |`);
  const later = mean(m.sequential.slice(1)).toFixed(1);
  console.log(`| mirra, in turn (node-1 first) | ${list(m.sequential)} | ${later} (nodes 2-5) | ${mb(m.sequentialUpstreamBytes)} |`);
  console.log(`| mirra, 4 at once from node-1 | ${list(m.concurrent)} | ${mean(m.concurrent).toFixed(1)} | ${mb(m.concurrentUpstreamBytes)} |`);
  console.log(`| mirra, cold wave: 5 at once, none has it | ${list(m.cold.times)} | ${mean(m.cold.times).toFixed(1)} | ${mb(m.cold.upstreamBytes)} |`);
  console.log(`404 for a blob no node has (1,000 sequential GETs on node-2's agent): p99 ${m.missP99.toFixed(2)} ms`);
  console.log(
    `chunked fetch of a 256 MiB layer from a peer (containerd ${m.series}, 16 MiB chunks, 3 downloads): ` +
      `${list(m.chunked.chunked)} s, not chunked ${list(m.chunked.plain)} s; peer bytes ${m.chunked.peerBytesRatio.toFixed(3)} x the layer`,
  );
  const mbps = (values: number[]): string => values.map((v) => v.toFixed(0)).join(', ');
  console.log(
    `one blob stream (256 MiB): from the node's own files ${mbps(m.stream.local)} MB/s; from a peer through another agent ${mbps(m.stream.peer)} MB/s`,
  );
  const result = {
    bench: 'p2p',
    upstream_bytes_ratio: Number((m.sequentialUpstreamBytes / m.imageBytes).toFixed(3)),
    speedup_sequential: Number((m.baselineOne / mean(m.sequential.slice(1))).toFixed(2)),
    speedup_concurrent: Number((mean(m.baselineMany) / mean(m.concurrent)).toFixed(2)),
    // "each mirrored pull >= 5x faster": the slowest one, in either case.
    speedup_slowest_pull: Number(Math.min(m.baselineOne / Math.max(...m.sequential.slice(1)), mean(m.baselineMany) / Math.max(...m.concurrent)).toFixed(2)),
    miss_p99_ms: Number(m.missP99.toFixed(3)),
    cold_upstream_bytes_ratio: Number((m.cold.upstreamBytes / m.imageBytes).toFixed(3)),
    cold_slowest_vs_single: Number((Math.max(...m.cold.times) / m.baselineOne).toFixed(2)),
    chunked_peer_bytes_ratio: Number(m.chunked.peerBytesRatio.toFixed(3)),
    chunked_time_ratio: Number((median(m.chunked.chunked) / median(m.chunked.plain)).toFixed(2)),
    peer_stream_vs_local: Number((median(m.stream.peer) / median(m.stream.local)).toFixed(2)),
  };
  console.log(JSON.stringify(result));
}

/** The phases on a started cluster of 7 nodes. */
async function measure(cluster: Cluster): Promise<Measured> {
  console.error('generating three 500 MiB images and pushing them ...');
  const first = await generateImage({ dir: join(cluster.dir, 'img-1'), layers: LAYERS, seed: 'bench-p2p-1' });
  const second = await generateImage({ dir: join(cluster.dir, 'img-2'), layers: LAYERS, seed: 'bench-p2p-2' });
  const third = await generateImage({ dir: join(cluster.dir, 'img-3'), layers: LAYERS, seed: 'bench-p2p-3' });
  await cluster.upstream.push(first.layoutDir, 'bench/p2p', 'one');
  await cluster.upstream.push(second.layoutDir, 'bench/p2p', 'two');
  await cluster.upstream.push(third.layoutDir, 'bench/p2p', 'three');
  const [n1, n2, n3, n4, n5, n6, n7] = cluster.nodes;
  if (n1 === undefined || n2 === undefined || n3 === undefined || n4 === undefined || n5 === undefined || n6 === undefined || n7 === undefined)
    throw new Error('want 7 nodes');
  const rest = [n2, n3, n4, n5];
  const base = await baseline(cluster, rest, `${cluster.upstream.host}/bench/p2p:one`);
  const sequential = await inTurn(cluster, n1, rest, { ref: `${cluster.upstream.host}/bench/p2p:one`, digests: first.layers.map((l) => l.digest) });
  const concurrent = await atOnce(cluster, n1, rest, `${cluster.upstream.host}/bench/p2p:two`);
  const missP99 = await missP99Ms(n2.url, cluster.upstream.host);
  const cold = await coldWave(cluster, [n1, ...rest], `${cluster.upstream.host}/bench/p2p:three`);
  console.error('chunked fetch: a 256 MiB layer only node-1 has, node-6 (16 MiB chunks) and node-7 (not chunked) in turn ...');
  const chunked = await chunkedFetch(cluster, n1, { chunked: n6, plain: n7 });
  console.error('one peer stream against one local stream, same blob: 3 layers of 256 MiB only node-1 has, through node-7 ...');
  const stream = await peerStreamVsLocal(cluster, n1, n7);
  return {
    imageBytes: first.totalBytes,
    baselineOne: base.one,
    baselineMany: base.many,
    sequential: sequential.times,
    sequentialUpstreamBytes: sequential.upstreamBytes,
    concurrent: concurrent.times,
    concurrentUpstreamBytes: concurrent.upstreamBytes,
    missP99,
    cold,
    chunked,
    stream,
    series: n6.containerd.release.series,
  };
}

async function main(): Promise<void> {
  // The agents as deployed: compiled (npm run build), with the chart's NODE_OPTIONS.
  const cluster = await startCluster({
    nodes: 7,
    // node-6 fetches layers in chunks (containerd 2.1's transfer service); the others as containerd ships.
    pullSettings: (index) => (index === 6 ? { chunkBytes: CHUNK_BYTES, maxConcurrentDownloads: 3 } : undefined),
    upstreamBandwidthBytesPerSec: UPSTREAM_BYTES_PER_SEC,
    agentArgs: ['--log-level', 'info'],
    agentEntry: await buildAgent(),
    agentEnv: await chartAgentEnv(),
    // MIRRA_KEEP_DIR=1 keeps the agents' logs and containerd roots for a look after the run.
    keepDir: process.env.MIRRA_KEEP_DIR === '1',
  });
  try {
    await cluster.waitReady();
    report(await measure(cluster));
  } finally {
    await cluster.stop();
  }
}

main().catch((err: unknown) => {
  console.error(`bench:p2p failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
});
