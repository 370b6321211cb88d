// `npm run bench:p2p`: 5 nodes (and 2 for chunked fetch) on the local cluster harness, the upstream
// limited to 20 MB/s like a remote registry, a 500 MiB image. Every pull goes
// through containerd's CRI plugin (ImageService.PullImage), as the kubelet's
// do: containerd fetches and unpacks in the daemon, its registries from the
// node's hosts dir (the upstream alone for the baseline, the agent first for
// mirra).
//  - without mirra: one node pulls straight from upstream, then 4 nodes at once;
//  - with mirra: each node pulls in turn (the first from upstream, the rest from
//    peers), then 4 nodes pull a second image at once that one node has.
// Then containerd 2.1's chunked layer fetch (the transfer service's
// concurrent_layer_fetch_buffer, 16 MiB, 3 downloads) on two more nodes that
// take no part in the rest: a 256 MiB layer only node-1 has, pulled by node-6
// (chunked) and node-7 (not chunked), in turn, 5 rounds: the bytes node-1 sent
// node-6 per layer byte (chunked_peer_bytes_ratio) and node-6's pull time over
// node-7's (chunked_time_ratio, medians).
// The agents run as the image runs them (compiled, the chart's NODE_OPTIONS).
// Prints the time of every pull and the upstream bytes, then one JSON line.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { startCluster, type Cluster, type ClusterNode } from '../cluster/cluster.ts';
import { writeMirrorHosts, writeUpstreamHosts } from '../support/hosts.ts';
import { generateImage } from '../support/image.ts';
import { waitFor } from '../support/process.ts';
import { buildAgent, chartNodeOptions } from './load-support.ts';
import { mean, median, percentile } from './stats.ts';

const MiB = 1024 * 1024;
const UPSTREAM_BYTES_PER_SEC = 20e6;
const LAYERS = [100, 100, 100, 100, 100].map((n) => n * MiB);
const CHUNK_BYTES = 16 * MiB;
const CHUNKED_LAYER_BYTES = 256 * MiB;
const CHUNK_ROUNDS = 5;

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
  await waitFor('node-6 and node-7 to find the layer on node-1', async () => {
    for (const node of [nodes.chunked, nodes.plain]) {
      const res = await fetch(`${node.agent.url}/v2/bench/p2p/blobs/${layer.digest}?ns=${encodeURIComponent(cluster.upstream.host)}`, { method: 'HEAD' });
      await res.body?.cancel();
      if (res.status !== 200) return false;
    }
    return true;
  }, 20_000, 100);
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

async function main(): Promise<void> {
  // The agents as deployed: compiled (npm run build), with the chart's NODE_OPTIONS.
  const cluster = await startCluster({
    nodes: 7,
    // node-6 fetches layers in chunks (containerd 2.1's transfer service); the others as containerd ships.
    pullSettings: (index) => (index === 6 ? { chunkBytes: CHUNK_BYTES, maxConcurrentDownloads: 3 } : undefined),
    upstreamBandwidthBytesPerSec: UPSTREAM_BYTES_PER_SEC,
    agentArgs: ['--log-level', 'info'],
    agentEntry: await buildAgent(),
    agentEnv: { NODE_OPTIONS: await chartNodeOptions() },
  });
  try {
    await cluster.waitReady();
    console.error('generating two 500 MiB images and pushing them ...');
    const first = await generateImage({ dir: join(cluster.dir, 'img-1'), layers: LAYERS, seed: 'bench-p2p-1' });
    const second = await generateImage({ dir: join(cluster.dir, 'img-2'), layers: LAYERS, seed: 'bench-p2p-2' });
    await cluster.upstream.push(first.layoutDir, 'bench/p2p', 'one');
    await cluster.upstream.push(second.layoutDir, 'bench/p2p', 'two');
    const refOne = `${cluster.upstream.host}/bench/p2p:one`;
    const refTwo = `${cluster.upstream.host}/bench/p2p:two`;
    const [n1, n2, n3, n4, n5, n6, n7] = cluster.nodes;
    if (n1 === undefined || n2 === undefined || n3 === undefined || n4 === undefined || n5 === undefined || n6 === undefined || n7 === undefined) throw new Error('want 7 nodes');
    const rest = [n2, n3, n4, n5];

    console.error('without mirra: one pull, then 4 at once, straight from upstream ...');
    // The upstream alone in the hosts dirs: containerd talks to the upstream registry only.
    await Promise.all(rest.map((node) => writeUpstreamHosts(node.hostsDir, cluster.upstream.host)));
    const baselineOne = await timedPull(() => rest[0]!.pull(refOne));
    await forget(rest[0]!);
    const baselineMany = await Promise.all(rest.map((node) => timedPull(() => node.pull(refOne))));
    await Promise.all(rest.map((node) => forget(node)));
    await Promise.all(rest.map((node) => writeMirrorHosts(node.hostsDir, cluster.upstream.host, node.agent.url)));

    console.error('with mirra: each node in turn ...');
    cluster.upstream.resetCounts();
    const sequential: number[] = [];
    sequential.push(await timedPull(() => n1.pull(refOne)));
    await waitFor('node-1 to advertise the image', async () => {
      const pod = cluster.api.get('Pod', cluster.namespace, n1.podName) as { metadata?: { annotations?: Record<string, string> } } | undefined;
      return /n=[1-9]/.test(pod?.metadata?.annotations?.['mirra.dev/summary'] ?? '');
    }, 20_000, 100);
    for (const node of rest) {
      sequential.push(await timedPull(() => node.pull(refOne)));
      await new Promise((resolve) => setTimeout(resolve, 2500)); // let the node advertise what it pulled
    }
    const sequentialUpstreamBytes = cluster.upstream.counts().bytes;

    console.error('with mirra: 4 nodes at once, one node has the image ...');
    await n1.pull(refTwo);
    await new Promise((resolve) => setTimeout(resolve, 2500));
    cluster.upstream.resetCounts();
    const concurrent = await Promise.all(rest.map((node) => timedPull(() => node.pull(refTwo))));
    const concurrentUpstreamBytes = cluster.upstream.counts().bytes;

    const missP99 = await missP99Ms(rest[0]!.url, cluster.upstream.host);

    console.error('chunked fetch: a 256 MiB layer only node-1 has, node-6 (16 MiB chunks) and node-7 (not chunked) in turn ...');
    const chunked = await chunkedFetch(cluster, n1, { chunked: n6, plain: n7 });
    const imageBytes = first.totalBytes;
    console.log(`image ${(imageBytes / 1e6).toFixed(0)} MB, upstream limited to ${UPSTREAM_BYTES_PER_SEC / 1e6} MB/s, 5 nodes, pulls through containerd's CRI plugin`);
    console.log('| case | pulls (s) | mean (s) | upstream bytes |');
    console.log('| --- | --- | ---: | ---: |');
    console.log(`| without mirra, one pull | ${baselineOne.toFixed(1)} | ${baselineOne.toFixed(1)} | ${(imageBytes / 1e6).toFixed(0)} MB |`);
    console.log(`| without mirra, 4 at once | ${baselineMany.map((s) => s.toFixed(1)).join(', ')} | ${mean(baselineMany).toFixed(1)} | ${((imageBytes * 4) / 1e6).toFixed(0)} MB |`);
    console.log(`| mirra, in turn (node-1 first) | ${sequential.map((s) => s.toFixed(1)).join(', ')} | ${mean(sequential.slice(1)).toFixed(1)} (nodes 2-5) | ${(sequentialUpstreamBytes / 1e6).toFixed(0)} MB |`);
    console.log(`| mirra, 4 at once from node-1 | ${concurrent.map((s) => s.toFixed(1)).join(', ')} | ${mean(concurrent).toFixed(1)} | ${(concurrentUpstreamBytes / 1e6).toFixed(0)} MB |`);
    console.log(`404 for a blob no node has (1,000 sequential GETs on node-2's agent): p99 ${missP99.toFixed(2)} ms`);
    console.log(
      `chunked fetch of a 256 MiB layer from a peer (containerd ${n6.containerd.release.series}, 16 MiB chunks, 3 downloads): ` +
        `${chunked.chunked.map((t) => t.toFixed(1)).join(', ')} s, not chunked ${chunked.plain.map((t) => t.toFixed(1)).join(', ')} s; ` +
        `peer bytes ${chunked.peerBytesRatio.toFixed(3)} x the layer`,
    );
    const result = {
      bench: 'p2p',
      upstream_bytes_ratio: Number((sequentialUpstreamBytes / imageBytes).toFixed(3)),
      speedup_sequential: Number((baselineOne / mean(sequential.slice(1))).toFixed(2)),
      speedup_concurrent: Number((mean(baselineMany) / mean(concurrent)).toFixed(2)),
      // "each mirrored pull >= 5x faster": the slowest one, in either case.
      speedup_slowest_pull: Number(Math.min(baselineOne / Math.max(...sequential.slice(1)), mean(baselineMany) / Math.max(...concurrent)).toFixed(2)),
      miss_p99_ms: Number(missP99.toFixed(3)),
      chunked_peer_bytes_ratio: Number(chunked.peerBytesRatio.toFixed(3)),
      chunked_time_ratio: Number((median(chunked.chunked) / median(chunked.plain)).toFixed(2)),
    };
    console.log(JSON.stringify(result));
  } finally {
    await cluster.stop();
  }
}

main().catch((err: unknown) => {
  console.error(`bench:p2p failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  process.exitCode = 1;
});
