// `npm run bench:serve`: blob throughput of the agent against nginx (sendfile)
// and docker-registry, same client (curl), same run; and manifest GET latency
// at 64 concurrent clients, by digest and by tag, after a warm-up, beside
// nginx serving the same manifest file to the same client (a Node client that
// takes about a core of its own on this 2-core machine, so its latency is
// most of the agent's: manifest_p99_vs_nginx tells the agent's part), in
// three alternated rounds (medians: one series alone moved by 1.5x with the
// machine's spells). The agent
// runs as the image runs it (the bundle dist/mirra.mjs with its sendfile
// addon, the chart's environment); a second one with --sendfile=off shows
// the copying path (1 MiB pooled buffers) in the same run. Prints a table,
// then one JSON line.
import { execFile } from 'node:child_process';
import { Agent, request } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent, type TestAgent } from '../support/agent.ts';
import { freePort, portOpen, startProcess, waitFor } from '../support/process.ts';
import { startPulledImage, type PulledImage } from '../support/pulled-image.ts';
import { buildAgent, chartAgentEnv } from './load-support.ts';
import { median, percentile } from './stats.ts';

const MiB = 1024 * 1024;
const BLOB_BYTES = 256 * MiB;
const ROUNDS = 5;
const CONCURRENT_STREAMS = 8;
const MANIFEST_CLIENTS = 64;
const MANIFEST_REQUESTS = 20_000;
/**
 * Requests of each kind sent before the measured ones (not counted), so the
 * p99 is the steady state's: right after the blob rounds the agent answered
 * manifests at about half its rate for 1.5 s (twice fewer scavenges, each
 * longer), and with 2,000 of each first the p99 of the series measured first
 * (by digest) was 17-22 ms against 8-9 ms for the next one (2026-12-06).
 */
const MANIFEST_WARMUP_REQUESTS = 10_000;

interface Target {
  name: string;
  blobUrl: string;
}

function curl(url: string): Promise<{ bytes: number; seconds: number }> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '-f', '-o', '/dev/null', '-w', '%{size_download} %{time_total}', url], (err, stdout) => {
      if (err !== null) return reject(new Error(`curl ${url}: ${err.message}`));
      const [bytes, seconds] = stdout.trim().split(' ').map(Number);
      resolve({ bytes: bytes ?? 0, seconds: seconds ?? 0 });
    });
  });
}

/** MB/s of `streams` concurrent downloads of the blob: total bytes over wall time. */
async function throughput(url: string, streams: number, blobBytes: number): Promise<number> {
  const start = performance.now();
  const results = await Promise.all(Array.from({ length: streams }, () => curl(url)));
  const seconds = (performance.now() - start) / 1000;
  const bytes = results.reduce((sum, r) => sum + r.bytes, 0);
  if (bytes !== blobBytes * streams) throw new Error(`${url}: got ${bytes} bytes, want ${blobBytes * streams}`);
  return bytes / 1e6 / seconds;
}

async function manifestLatencies(url: string, requests = MANIFEST_REQUESTS): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: MANIFEST_CLIENTS });
  const latencies: number[] = [];
  let next = 0;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const start = performance.now();
      const req = request(url, { agent }, (res) => {
        res.resume();
        res.once('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`manifest GET: ${res.statusCode}`));
          latencies.push(performance.now() - start);
          resolve();
        });
      });
      req.once('error', reject);
      req.end();
    });
  const worker = async (): Promise<void> => {
    while (next < requests) {
      next += 1;
      await one();
    }
  };
  await Promise.all(Array.from({ length: MANIFEST_CLIENTS }, worker));
  agent.destroy();
  return latencies.sort((a, b) => a - b);
}

/** Rounds of the manifest series, each kind in turn, so that a slower spell of the machine touches all of them. */
const MANIFEST_ROUNDS = 3;

interface SeriesStats {
  /** Medians over the rounds. */
  p50: number;
  p99: number;
  /** Each round's p99. */
  p99s: number[];
}

/**
 * The manifest series: the agent by digest, nginx serving the same file (the
 * reference: the client's own share of the latency), the agent by tag, after
 * a warm-up of each; MANIFEST_ROUNDS rounds, alternated.
 */
async function manifestSeries(urls: { digest: string; tag: string; nginx: string }): Promise<Record<'digest' | 'tag' | 'nginx', SeriesStats>> {
  const kinds = ['digest', 'nginx', 'tag'] as const;
  for (const kind of kinds) await manifestLatencies(urls[kind], MANIFEST_WARMUP_REQUESTS);
  const runs: Record<(typeof kinds)[number], number[][]> = { digest: [], nginx: [], tag: [] };
  for (let round = 0; round < MANIFEST_ROUNDS; round++) for (const kind of kinds) runs[kind].push(await manifestLatencies(urls[kind]));
  const stats = (series: number[][]): SeriesStats => ({
    p50: median(series.map((l) => percentile(l, 0.5))),
    p99: median(series.map((l) => percentile(l, 0.99))),
    p99s: series.map((l) => percentile(l, 0.99)),
  });
  return { digest: stats(runs.digest), tag: stats(runs.tag), nginx: stats(runs.nginx) };
}

async function startNginx(dir: string, root: string): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  await writeFile(
    conf,
    [
      'daemon off;',
      'master_process on;',
      'user root;',
      'worker_processes 1;',
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${join(dir, 'nginx-error.log')} warn;`,
      'events { worker_connections 1024; }',
      'http {',
      '  access_log off;',
      '  sendfile on;',
      '  tcp_nopush on;',
      '  default_type application/octet-stream;',
      `  server { listen 127.0.0.1:${port}; root ${root}; }`,
      '}',
    ].join('\n'),
  );
  const child = startProcess({ name: 'nginx', command: '/usr/sbin/nginx', args: ['-c', conf, '-p', dir], logFile: join(dir, 'nginx.log') });
  await waitFor('nginx', () => portOpen('127.0.0.1', port));
  return { url: `http://127.0.0.1:${port}`, stop: () => child.stop() };
}

/** An agent as the image runs it (the bundle `entry`, the chart's environment) on the node's containerd. */
async function startBenchAgent(at: { dir: string; node: PulledImage; entry: string }, name: string, args: string[] = []): Promise<TestAgent> {
  const { dir, node, entry } = at;
  return startAgent({
    dir,
    name,
    entry,
    env: await chartAgentEnv(),
    host: '127.0.0.1',
    port: await freePort(),
    containerdSock: node.containerd.socket,
    contentPath: node.containerd.contentDir,
    extraArgs: ['--log-level', 'warn', ...args],
  });
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mirra-bench-serve-'));
  const stops: Array<() => Promise<void>> = [];
  try {
    console.error('generating a 256 MiB layer, pushing it to docker-registry, pulling it into containerd ...');
    const node = await startPulledImage({ dir, repository: 'bench/serve', layers: [BLOB_BYTES], seed: 'bench-serve' });
    stops.push(() => node.stop());
    const { upstream, containerd, image, layer } = node;

    const entry = await buildAgent();
    const agent = await startBenchAgent({ dir, node, entry }, 'agent');
    stops.push(() => agent.stop());
    const copying = await startBenchAgent({ dir, node, entry }, 'agent-copying', ['--sendfile=off']);
    stops.push(() => copying.stop());
    const nginx = await startNginx(dir, join(containerd.contentDir, 'blobs'));
    stops.push(() => nginx.stop());

    const hex = layer.digest.slice('sha256:'.length);
    const ns = `?ns=${encodeURIComponent(upstream.host)}`;
    const targets: Target[] = [
      { name: 'mirra agent', blobUrl: `${agent.url}/v2/bench/serve/blobs/${layer.digest}${ns}` },
      { name: 'mirra agent, --sendfile=off', blobUrl: `${copying.url}/v2/bench/serve/blobs/${layer.digest}${ns}` },
      { name: 'nginx sendfile', blobUrl: `${nginx.url}/sha256/${hex}` },
      { name: 'docker-registry', blobUrl: `http://${upstream.directHost}/v2/bench/serve/blobs/${layer.digest}` },
    ];
    const one = new Map<string, number[]>();
    const many = new Map<string, number[]>();
    for (const target of targets) await throughput(target.blobUrl, 1, layer.size); // warm the page cache and each server
    for (let round = 0; round < ROUNDS; round++) {
      for (const target of targets) {
        one.set(target.name, [...(one.get(target.name) ?? []), await throughput(target.blobUrl, 1, layer.size)]);
        many.set(target.name, [...(many.get(target.name) ?? []), await throughput(target.blobUrl, CONCURRENT_STREAMS, layer.size)]);
      }
    }
    const mbps = (map: Map<string, number[]>, name: string): number => median(map.get(name) ?? []);
    // Not beside the manifest series: its idle collection (a full GC 10 s after its last request) would share the cores with it.
    await copying.stop();

    const {
      digest,
      tag,
      nginx: fromNginx,
    } = await manifestSeries({
      digest: `${agent.url}/v2/bench/serve/manifests/${image.manifestDigest}${ns}`,
      tag: `${agent.url}/v2/bench/serve/manifests/v1${ns}`,
      nginx: `${nginx.url}/sha256/${image.manifestDigest.slice('sha256:'.length)}`,
    });

    const agentOne = mbps(one, 'mirra agent');
    const agentMany = mbps(many, 'mirra agent');
    console.log(`blob of ${(layer.size / MiB).toFixed(1)} MiB, curl as the client, median of ${ROUNDS} rounds (MB/s)`);
    console.log('| server | 1 stream | 8 streams | agent / server (1) | agent / server (8) |');
    console.log('| --- | ---: | ---: | ---: | ---: |');
    for (const target of targets) {
      const a = mbps(one, target.name);
      const b = mbps(many, target.name);
      console.log(`| ${target.name} | ${a.toFixed(0)} | ${b.toFixed(0)} | ${(agentOne / a).toFixed(2)} | ${(agentMany / b).toFixed(2)} |`);
    }
    const rounds = (series: SeriesStats): string =>
      `p50 ${series.p50.toFixed(2)} ms, p99 ${series.p99.toFixed(2)} ms (rounds: ${series.p99s.map((v) => v.toFixed(1)).join(', ')})`;
    console.log(
      `manifest GET, ${MANIFEST_CLIENTS} concurrent clients, ${MANIFEST_REQUESTS} requests a round, medians of ${MANIFEST_ROUNDS} rounds: ${rounds(digest)}`,
    );
    console.log(`manifest GET by tag, same load: ${rounds(tag)}`);
    console.log(`the same manifest file from nginx, same client and load: ${rounds(fromNginx)}`);
    const result = {
      bench: 'serve',
      ratio_nginx_1: Number((agentOne / mbps(one, 'nginx sendfile')).toFixed(3)),
      ratio_nginx_8: Number((agentMany / mbps(many, 'nginx sendfile')).toFixed(3)),
      ratio_registry_1: Number((agentOne / mbps(one, 'docker-registry')).toFixed(3)),
      ratio_copying_nginx_1: Number((mbps(one, 'mirra agent, --sendfile=off') / mbps(one, 'nginx sendfile')).toFixed(3)),
      ratio_copying_nginx_8: Number((mbps(many, 'mirra agent, --sendfile=off') / mbps(many, 'nginx sendfile')).toFixed(3)),
      manifest_p99_ms: Number(digest.p99.toFixed(3)),
      manifest_tag_p99_ms: Number(tag.p99.toFixed(3)),
      manifest_nginx_p99_ms: Number(fromNginx.p99.toFixed(3)),
      manifest_p99_vs_nginx: Number((digest.p99 / fromNginx.p99).toFixed(3)),
    };
    console.log(JSON.stringify(result));
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench:serve failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
});
