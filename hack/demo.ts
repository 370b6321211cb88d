// `npm start`: the main job of mirra on one machine.
//
// Starts docker-registry as the "remote" upstream (bandwidth-limited), pushes a
// generated image to it, lets containerd "node A" pull it from upstream, starts
// A's agent, then lets containerd "node B" pull the same image with A's agent as
// its mirror (hosts.toml), and prints where every byte came from. Ctrl-C stops
// everything it started.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent } from '../tests/support/agent.ts';
import { startContainerd } from '../tests/support/containerd.ts';
import { generateImage } from '../tests/support/image.ts';
import { freePort, runningProcesses } from '../tests/support/process.ts';
import { writeMirrorHosts } from '../tests/support/hosts.ts';
import { startUpstream } from '../tests/support/upstream.ts';

const MiB = 1024 * 1024;
const LAYER_BYTES = [8 * MiB, 24 * MiB, 48 * MiB];
const UPSTREAM_BYTES_PER_SEC = 40 * 1000 * 1000;

function mb(bytes: number): string {
  if (bytes < 1e6) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

async function timed<T>(work: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const start = performance.now();
  const result = await work();
  return { result, ms: performance.now() - start };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mirra-demo-'));
  let cleaned = false;
  const stoppers: Array<() => Promise<void>> = [];
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    await Promise.allSettled(stoppers.reverse().map((stop) => stop()));
    await Promise.allSettled(runningProcesses().map((child) => child.stop(3000)));
    await rm(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    console.log('\ninterrupted: stopping everything this demo started');
    void cleanup().then(() => process.exit(130));
  });

  try {
    console.log(`working directory ${dir}`);
    const upstream = await startUpstream({ dir: join(dir, 'upstream'), bandwidthBytesPerSec: UPSTREAM_BYTES_PER_SEC });
    stoppers.push(() => upstream.stop());
    console.log(`upstream docker-registry at ${upstream.host} (limited to ${mb(UPSTREAM_BYTES_PER_SEC)}/s)`);

    const image = await generateImage({ dir: join(dir, 'image'), layers: LAYER_BYTES, seed: 'demo' });
    await upstream.push(image.layoutDir, 'demo/app', 'v1');
    const reference = `${upstream.host}/demo/app:v1`;
    console.log(`pushed ${reference}: ${LAYER_BYTES.length} layers, ${mb(image.totalBytes)}`);

    const nodeA = await startContainerd({ dir: join(dir, 'node-a'), name: 'containerd-a' });
    stoppers.push(() => nodeA.stop());
    const nodeB = await startContainerd({ dir: join(dir, 'node-b'), name: 'containerd-b' });
    stoppers.push(() => nodeB.stop());

    upstream.resetCounts();
    const pullA = await timed(() => nodeA.pull(reference, { plainHttp: true }));
    const fromUpstreamA = upstream.counts();
    console.log(`node A pulled from upstream in ${(pullA.ms / 1000).toFixed(2)} s: ${mb(fromUpstreamA.bytes)} from upstream`);

    const agentPort = await freePort('127.0.0.2');
    const agent = await startAgent({
      dir,
      name: 'agent-a',
      host: '127.0.0.2',
      port: agentPort,
      containerdSock: nodeA.socket,
      contentPath: nodeA.contentDir,
      mirroredRegistries: [upstream.host],
    });
    stoppers.push(() => agent.stop());
    console.log(`node A's agent serves ${agent.url} from containerd A's content store`);

    const hostsDir = join(dir, 'node-b', 'certs.d');
    await writeMirrorHosts(hostsDir, upstream.host, agent.url);

    upstream.resetCounts();
    const pullB = await timed(() => nodeB.pull(reference, { hostsDir, plainHttp: true }));
    const fromUpstreamB = upstream.counts();
    const served = (await agent.accessLines()).filter((line) => line.status === 200 || line.status === 206);
    const agentBytes = served.reduce((sum, line) => sum + (typeof line.bytesSent === 'number' ? line.bytesSent : 0), 0);
    console.log(`node B pulled through A's agent in ${(pullB.ms / 1000).toFixed(2)} s`);
    console.log('');
    console.log("where node B's bytes came from:");
    console.log(`  A's agent (containerd A's store): ${mb(agentBytes)} in ${served.length} responses`);
    for (const line of served)
      console.log(`    ${String(line.method)} ${String(line.url)} -> ${String(line.status)} ${mb(Number(line.bytesSent ?? 0))} (${String(line.handler)})`);
    console.log(`  upstream registry: ${mb(fromUpstreamB.bytes)}, ${fromUpstreamB.blobGets} blob GETs, ${fromUpstreamB.manifestGets} manifest GETs`);
    console.log('');
    console.log(
      `pull time: upstream ${(pullA.ms / 1000).toFixed(2)} s, through the mirror ${(pullB.ms / 1000).toFixed(2)} s (${(pullA.ms / pullB.ms).toFixed(1)}x faster)`,
    );
  } finally {
    await cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
