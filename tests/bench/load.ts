// `npm run bench:load`: one agent serving from a real containerd under 200
// concurrent blob streams (a 32 MiB layer, read at full speed, again and
// again) plus 1,000 manifest HEADs per second (by tag, as containerd asks),
// for 60 s (MIRRA_LOAD_SECONDS to shorten), all on loopback. The two load
// generators are separate processes (load-client.ts). The agent's RSS is
// sampled every 100 ms from /proc (and its VmHWM read at the end), its
// event-loop delay and heap from its /metrics every second.
//
// Target: no error but 503 while overloaded, peak RSS under 256 MiB.
// Prints a table, then the last line:
//   {"bench":"load","non_503_errors":N,"share_503":F,"p99_ms":T,"idle_rss_mb":M,"peak_rss_mb":M}
// where p99_ms is the p99 latency of the manifest HEADs answered 200, and
// non_503_errors counts every request that got neither 200 nor 503 (other
// statuses, resets, timeouts, short bodies, requests the rate generator could
// not even start). MIRRA_LOAD_AGENT_ARGS adds agent flags (e.g.
// "--max-rss 0 --max-event-loop-delay 0" to measure without load shedding);
// MIRRA_LOAD_STREAMS and MIRRA_LOAD_HEADS change the load, for diagnosis.
// The agent runs as the image runs it (compiled by `npm run build`), with the
// NODE_OPTIONS the chart gives it (values.yaml `nodeOptions`: V8 heap sizes,
// or MIRRA_LOAD_AGENT_NODE_OPTIONS) and the --max-rss 'auto' gives in the
// chart's container (a share of resources.limits.memory).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent } from '../support/agent.ts';
import { freePort } from '../support/process.ts';
import { startPulledImage } from '../support/pulled-image.ts';
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
  non503Errors,
  runClient,
} from './load-support.ts';
import { median } from './stats.ts';

const MiB = 1024 * 1024;

/** The bench's settings from the environment (MIRRA_LOAD_*). */
function loadSettings(): { seconds: number; agentArgs: string[]; streams: number; headsPerSecond: number } {
  const seconds = Number(process.env.MIRRA_LOAD_SECONDS ?? '60');
  if (!(seconds > 0)) throw new Error('MIRRA_LOAD_SECONDS must be a positive number');
  const agentArgs = (process.env.MIRRA_LOAD_AGENT_ARGS ?? '').split(' ').filter((arg) => arg !== '');
  // For diagnosis only; the bench's target is the defaults.
  const streams = Number(process.env.MIRRA_LOAD_STREAMS ?? LOAD_STREAMS);
  const headsPerSecond = Number(process.env.MIRRA_LOAD_HEADS ?? LOAD_HEADS_PER_SECOND);
  if (!(streams > 0) || !(headsPerSecond > 0)) throw new Error('MIRRA_LOAD_STREAMS and MIRRA_LOAD_HEADS must be positive numbers');
  return { seconds, agentArgs, streams, headsPerSecond };
}

/**
 * From the agent's access log: the 503s (shed), and the time inside the agent of
 * the manifest HEADs answered 200, sorted (against what the client saw, which
 * adds the client's and the kernel's queues).
 */
function accessSummary(access: Array<Record<string, unknown>>): { shed: number; inAgentMs: number[] } {
  const shed = access.filter((line) => line.status === 503).length;
  const inAgentMs = access
    .filter((line) => line.handler === 'manifest' && line.status === 200 && typeof line.latencyMs === 'number')
    .map((line) => Number(line.latencyMs))
    .sort((a, b) => a - b);
  return { shed, inAgentMs };
}

async function main(): Promise<void> {
  const { seconds, agentArgs, streams, headsPerSecond } = loadSettings();
  const dir = await mkdtemp(join(tmpdir(), 'mirra-bench-load-'));
  const stops: Array<() => Promise<void>> = [];
  try {
    console.error('generating an image (32 MiB layer), pushing it to docker-registry, pulling it into containerd ...');
    const node = await startPulledImage({ dir, repository: 'bench/load', layers: LOAD_LAYER_BYTES, seed: 'bench-load' });
    stops.push(() => node.stop());
    const { upstream, containerd, layer } = node;

    const entry = await buildAgent();
    const maxRss = await chartMaxRss();
    const agentEnv = await chartAgentEnv();
    console.error(`agent environment: ${JSON.stringify(agentEnv)}`);
    const agent = await startAgent({
      dir,
      name: 'agent',
      host: '127.0.0.1',
      port: await freePort(),
      metricsPort: await freePort(),
      containerdSock: containerd.socket,
      contentPath: containerd.contentDir,
      // --max-rss: what 'auto' gives in the chart's container (94% of its 192Mi limit); there is no cgroup limit here.
      extraArgs: ['--log-level', 'info', '--max-rss', maxRss, ...agentArgs],
      env: agentEnv,
      entry,
    });
    stops.push(() => agent.stop());
    const ns = `?ns=${encodeURIComponent(upstream.host)}`;
    const blobUrl = `${agent.url}/v2/bench/load/blobs/${layer.digest}${ns}`;
    const manifestUrl = `${agent.url}/v2/bench/load/manifests/v1${ns}`;
    await (await fetch(blobUrl)).arrayBuffer(); // warm the page cache
    const idleRss = await idleRssBytes(agent.process.pid);

    console.error(`load: ${streams} blob streams + ${headsPerSecond} manifest HEAD/s for ${seconds} s ...`);
    const sampling = startSampling(agent.process.pid, agent.metricsUrl);
    const clientTimeoutMs = (seconds + 180) * 1000;
    const [blobs, heads] = await Promise.all([
      runClient(['streams', blobUrl, String(streams), String(seconds)], clientTimeoutMs),
      runClient(['rate', manifestUrl, String(headsPerSecond), String(seconds), 'HEAD'], clientTimeoutMs),
    ]);
    const series = await sampling.stop();
    const { hwmBytes, peakRssBytes } = series;
    // Time inside the agent (its access log), against what the client saw (which adds the client's and the kernel's queues).
    const { shed, inAgentMs } = accessSummary(await agent.accessLines());
    const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;

    const total = blobs.requests + heads.requests + heads.skipped;
    const n503 = (blobs.statuses['503'] ?? 0) + (heads.statuses['503'] ?? 0);
    const errors = non503Errors(blobs) + non503Errors(heads);
    const row = (name: string, r: LoadResult, throughput: string): string =>
      `| ${name} | ${r.requests} | ${r.statuses['200'] ?? 0} | ${r.statuses['503'] ?? 0} | ${non503Errors(r)} | ${throughput} | ${r.headersMs.p50} / ${r.headersMs.p99} | ${r.latencyMs.p50} / ${r.latencyMs.p99} |`;
    console.log(
      `${streams} blob streams (${(layer.size / MiB).toFixed(0)} MiB layer) + ${headsPerSecond} manifest HEAD/s by tag, ${seconds} s, loopback, one agent`,
    );
    console.log('| load | requests | 200 | 503 | other errors | throughput | headers p50 / p99 (ms) | complete p50 / p99 (ms) |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    console.log(row('blob GET streams', blobs, `${(blobs.bodyBytes / 1e6 / blobs.seconds).toFixed(0)} MB/s`));
    console.log(row('manifest HEAD', heads, `${((heads.statuses['200'] ?? 0) / heads.seconds).toFixed(0)} ok/s`));
    console.log(
      `agent: RSS idle ${(idleRss / MiB).toFixed(0)} MiB, peak ${(peakRssBytes / MiB).toFixed(1)} MiB (VmHWM ${(hwmBytes / MiB).toFixed(1)} MiB); ` +
        `event-loop delay mean per second: median ${median(series.lagMeanMs).toFixed(1)} ms, max ${max(series.lagMeanMs).toFixed(1)} ms; ` +
        `p99 max ${max(series.lagP99Ms).toFixed(1)} ms; heap used max ${(max(series.heapUsedBytes) / MiB).toFixed(1)} MiB, total max ${(max(series.heapTotalBytes) / MiB).toFixed(1)} MiB; ` +
        `external max ${(max(series.externalBytes) / MiB).toFixed(1)} MiB; ` +
        `CPU (cores) median ${median(series.cpuCores).toFixed(2)}, max ${max(series.cpuCores).toFixed(2)}; ` +
        `503 in the access log: ${shed}; manifest HEAD 200 inside the agent: p50 ${pct(inAgentMs, 50).toFixed(1)} ms, p99 ${pct(inAgentMs, 99).toFixed(1)} ms`,
    );
    if (Object.keys(blobs.errors).length + Object.keys(heads.errors).length > 0)
      console.log(`errors: ${JSON.stringify({ blobs: blobs.errors, heads: heads.errors })}`);
    console.log(
      JSON.stringify({
        bench: 'load',
        non_503_errors: errors,
        share_503: Number((total === 0 ? 0 : n503 / total).toFixed(4)),
        p99_ms: heads.latencyMs.p99,
        idle_rss_mb: Number((idleRss / MiB).toFixed(1)),
        peak_rss_mb: Number((peakRssBytes / MiB).toFixed(1)),
      }),
    );
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench:load failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
});
