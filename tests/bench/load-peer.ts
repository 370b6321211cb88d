// `npm run bench:load-peer`: bench:load's load on the peer path. Two nodes of
// the local cluster harness; node-1 has the image, node-2 does not: 200
// concurrent GETs of the 32 MiB layer plus 1,000 manifest HEADs per second by
// tag, all against node-2's agent, which must fetch every byte from node-1
// (blobs verified, tags resolved through the peer), for 60 s
// (MIRRA_LOAD_SECONDS to shorten). Both agents run as the image runs them
// (compiled by `npm run build`), with the chart's NODE_OPTIONS and the
// --max-rss 'auto' gives in its container; MIRRA_LOAD_AGENT_ARGS adds flags and
// MIRRA_LOAD_AGENT_ENV environment variables to them (for diagnosis, e.g.
// "--max-peer-streams 16", "MALLOC_ARENA_MAX=2").
//
// The load client follows redirects as containerd does. The layer (32 MiB)
// is above --peer-redirect-min-size, but one digest asked for again within
// 60 s of its redirect is streamed through the agent (a retry, for it:
// internal/peer/redirect-path.ts), so after the first GET the load is on the
// streamed path, the one that costs node-2 memory.
//
// What it shows: node-2's memory stays bounded whatever the number of streams
// (at most --max-peer-streams from peers at once, the hold-back budget, the
// buffers per stream); beyond the limit a blob GET is a 404 at once (not here:
// containerd goes upstream), overload is a 503; nothing else.
// Last line:
//   {"bench":"load-peer","other_errors":N,"share_404":F,"share_503":F,"redirects":N,"idle_rss_mb":M,"peak_rss_mb":M,"serving_peak_rss_mb":M,"recovered":B,"recovered_after_s":S}
// where other_errors counts answers other than 200, 404 and 503 (and resets,
// timeouts, short bodies), peak_rss_mb is node-2's agent and
// serving_peak_rss_mb node-1's; recovered: within 60 s after the load a GET
// of the layer gets all of it (memory kept after the peak must not shed for
// good), recovered_after_s: when.
import { join } from 'node:path';
import { startCluster, type Cluster, type ClusterNode } from '../cluster/cluster.ts';
import { waitUntilServed } from '../cluster/served.ts';
import { generateImage, type GeneratedLayer } from '../support/image.ts';
import type { LoadResult } from './load-client.ts';
import { max, startSampling } from './agent-sampling.ts';
import {
  buildAgent,
  chartMaxRss,
  chartAgentEnv,
  idleRssBytes,
  LOAD_HEADS_PER_SECOND,
  LOAD_LAYER_BYTES,
  LOAD_STREAMS,
  metricValues,
  procStatusBytes,
  runClient,
} from './load-support.ts';

const MiB = 1024 * 1024;
const RECOVERY_LIMIT_MS = 60_000;

/** The agent's V8 heap and external memory from its /metrics. */
async function memoryOf(metricsUrl: string | undefined): Promise<{ heapUsed: number; heapTotal: number; external: number }> {
  const text = metricsUrl === undefined ? '' : await (await fetch(metricsUrl, { signal: AbortSignal.timeout(900) })).text();
  const values = metricValues(text, ['mirra_nodejs_heap_size_used_bytes', 'mirra_nodejs_heap_size_total_bytes', 'mirra_nodejs_external_memory_bytes']);
  const value = (name: string): number => values.get(name) ?? NaN;
  return {
    heapUsed: value('mirra_nodejs_heap_size_used_bytes'),
    heapTotal: value('mirra_nodejs_heap_size_total_bytes'),
    external: value('mirra_nodejs_external_memory_bytes'),
  };
}

const sum = (record: Record<string, number>): number => Object.values(record).reduce((a, b) => a + b, 0);

/** Answers other than 200, 404 and 503, and failures without an answer. */
function otherErrors(result: LoadResult): number {
  const other = Object.entries(result.statuses).filter(([status]) => !['200', '404', '503'].includes(status));
  return sum(result.errors) + other.reduce((total, [, n]) => total + n, 0) + result.skipped;
}

/**
 * Once the load is gone, GETs the layer until it works again (not shed for good
 * for memory kept after the peak), for at most RECOVERY_LIMIT_MS.
 */
async function awaitRecovery(blobUrl: string): Promise<{ after: { status: number; bytes: number }; recoveredAfterMs: number }> {
  const loadEnded = performance.now();
  let after = { status: 0, bytes: 0 };
  while (performance.now() - loadEnded < RECOVERY_LIMIT_MS) {
    const res = await fetch(blobUrl);
    after = { status: res.status, bytes: (await res.arrayBuffer()).byteLength };
    if (after.status === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return { after, recoveredAfterMs: performance.now() - loadEnded };
}

/** Two nodes whose agents run as the image runs them, with the chart's NODE_OPTIONS and --max-rss. */
async function startLoadCluster(): Promise<{ cluster: Cluster; nodeOptions: string }> {
  const agentEnv = await chartAgentEnv();
  const nodeOptions = agentEnv.NODE_OPTIONS ?? '';
  const agentEntry = await buildAgent();
  const maxRss = await chartMaxRss();
  const cluster = await startCluster({
    agentEntry,
    nodes: 2,
    agentArgs: ['--log-level', 'warn', '--max-rss', maxRss, ...(process.env.MIRRA_LOAD_AGENT_ARGS ?? '').split(' ').filter((arg) => arg !== '')],
    agentEnv,
    metrics: true,
  });
  return { cluster, nodeOptions };
}

/** node-1 pulls an image with one 32 MiB layer; resolves once node-2's agent finds the layer on node-1, with the URLs to load. */
async function layerOnHolder(
  cluster: Cluster,
  holder: ClusterNode,
  target: ClusterNode,
): Promise<{ layer: GeneratedLayer; blobUrl: string; manifestUrl: string }> {
  console.error('generating an image (32 MiB layer), pushing it, pulling it on node-1 ...');
  const image = await generateImage({ dir: join(cluster.dir, 'image'), layers: LOAD_LAYER_BYTES, seed: 'bench-load-peer' });
  const layer = image.layers[0];
  if (layer === undefined) throw new Error('no layer');
  await cluster.upstream.push(image.layoutDir, 'bench/load', 'v1');
  await holder.pull(`${cluster.upstream.host}/bench/load:v1`);
  const ns = `?ns=${encodeURIComponent(cluster.upstream.host)}`;
  const blobUrl = `${target.agent.url}/v2/bench/load/blobs/${layer.digest}${ns}`;
  const manifestUrl = `${target.agent.url}/v2/bench/load/manifests/v1${ns}`;
  await waitUntilServed(cluster, [target], { repository: 'bench/load', digest: layer.digest });
  return { layer, blobUrl, manifestUrl };
}

async function main(): Promise<void> {
  const seconds = Number(process.env.MIRRA_LOAD_SECONDS ?? '60');
  if (!(seconds > 0)) throw new Error('MIRRA_LOAD_SECONDS must be a positive number');
  const { cluster, nodeOptions } = await startLoadCluster();
  try {
    await cluster.waitReady();
    const [holder, target] = cluster.nodes;
    if (holder === undefined || target === undefined) throw new Error('want 2 nodes');
    const { layer, blobUrl, manifestUrl } = await layerOnHolder(cluster, holder, target);
    const idleRss = await idleRssBytes(target.agent.process.pid);

    console.error(
      `load on node-2's agent (every byte from node-1): ${LOAD_STREAMS} blob streams + ${LOAD_HEADS_PER_SECOND} manifest HEAD/s for ${seconds} s, NODE_OPTIONS ${JSON.stringify(nodeOptions)} ...`,
    );
    const targetSampling = startSampling(target.agent.process.pid, target.agent.metricsUrl);
    const holderSampling = startSampling(holder.agent.process.pid, undefined);
    const timeoutMs = (seconds + 180) * 1000;
    const [blobs, heads] = await Promise.all([
      runClient(['streams', blobUrl, String(LOAD_STREAMS), String(seconds)], timeoutMs),
      runClient(['rate', manifestUrl, String(LOAD_HEADS_PER_SECOND), String(seconds), 'HEAD'], timeoutMs),
    ]);
    const targetSeries = await targetSampling.stop();
    const peak = targetSeries.peakRssBytes;
    const servingPeak = (await holderSampling.stop()).peakRssBytes;
    // Recovered once the load is gone: a GET of the layer works again (not shed for good for memory kept after the peak).
    const { after, recoveredAfterMs } = await awaitRecovery(blobUrl);
    const recovered = after.status === 200 && after.bytes === layer.size;
    const afterRss = await procStatusBytes(target.agent.process.pid, 'VmRSS');
    const memory = await memoryOf(target.agent.metricsUrl);

    const total = blobs.requests + heads.requests + heads.skipped;
    const count = (status: string): number => (blobs.statuses[status] ?? 0) + (heads.statuses[status] ?? 0);
    const row = (name: string, r: LoadResult, throughput: string): string =>
      `| ${name} | ${r.requests} | ${r.statuses['200'] ?? 0} | ${r.statuses['404'] ?? 0} | ${r.statuses['503'] ?? 0} | ${otherErrors(r)} | ${throughput} | ${r.latencyMs.p50} / ${r.latencyMs.p99} |`;
    console.log(
      `${LOAD_STREAMS} blob streams (${(layer.size / MiB).toFixed(0)} MiB layer) + ${LOAD_HEADS_PER_SECOND} manifest HEAD/s by tag against node-2's agent, served from node-1, ${seconds} s`,
    );
    console.log('| load | requests | 200 | 404 (not here) | 503 | other errors | throughput | complete p50 / p99 (ms) |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    console.log(row('blob GET streams', blobs, `${(blobs.bodyBytes / 1e6 / blobs.seconds).toFixed(0)} MB/s`));
    console.log(row('manifest HEAD', heads, `${((heads.statuses['200'] ?? 0) / heads.seconds).toFixed(0)} ok/s`));
    console.log(
      `node-2's agent: RSS idle ${(idleRss / MiB).toFixed(0)} MiB, peak ${(peak / MiB).toFixed(1)} MiB, after the load ${(afterRss / MiB).toFixed(0)} MiB; node-1's agent (serving): peak ${(servingPeak / MiB).toFixed(1)} MiB`,
    );
    console.log(
      `node-2's agent during the load: heap used at most ${(max(targetSeries.heapUsedBytes) / MiB).toFixed(0)} MiB, external at most ${(max(targetSeries.externalBytes) / MiB).toFixed(0)} MiB; ` +
        `event-loop delay mean per second at most ${max(targetSeries.lagMeanMs).toFixed(1)} ms (${targetSeries.lagMeanMs.length} samples, one a second, of those /metrics answered within 0.9 s); ` +
        `CPU at most ${max(targetSeries.cpuCores).toFixed(2)} cores`,
    );
    console.log(
      `node-2's agent after the load: heap used ${(memory.heapUsed / MiB).toFixed(0)} MiB of ${(memory.heapTotal / MiB).toFixed(0)} MiB, external ${(memory.external / MiB).toFixed(0)} MiB`,
    );
    console.log(
      `after the load: a GET of the layer answered ${after.status} with ${after.bytes} bytes ${(recoveredAfterMs / 1000).toFixed(1)} s after it (${recovered ? 'recovered' : 'NOT recovered'})`,
    );
    if (Object.keys(blobs.errors).length + Object.keys(heads.errors).length > 0)
      console.log(`errors: ${JSON.stringify({ blobs: blobs.errors, heads: heads.errors })}`);
    console.log(
      JSON.stringify({
        bench: 'load-peer',
        other_errors: otherErrors(blobs) + otherErrors(heads),
        share_404: Number((total === 0 ? 0 : count('404') / total).toFixed(4)),
        share_503: Number((total === 0 ? 0 : count('503') / total).toFixed(4)),
        redirects: blobs.redirects,
        idle_rss_mb: Number((idleRss / MiB).toFixed(1)),
        peak_rss_mb: Number((peak / MiB).toFixed(1)),
        serving_peak_rss_mb: Number((servingPeak / MiB).toFixed(1)),
        recovered,
        recovered_after_s: Number((recoveredAfterMs / 1000).toFixed(1)),
      }),
    );
  } finally {
    await cluster.stop();
  }
}

main().catch((err: unknown) => {
  console.error(`bench:load-peer failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
});
