// `npm start [-- [--keep] [--port N]]`: mirra as it runs in a cluster, on one
// machine, on loopback only. The local cluster harness (tests/cluster) brings
// up three nodes, each with its own containerd, hosts.toml written by `mirra
// configure` (the chart's init container) and its agent run as the DaemonSet
// pod runs it (a pod object, readiness probe, EndpointSlice), the Kubernetes
// API stand-in, and a bandwidth-limited upstream registry. node-1 pulls a
// generated image from the upstream; node-2 and node-3 then pull it through
// their own agents, which find the holders through the owners of the image's
// keys (peers from the EndpointSlice). It prints each pull's time, where each
// node's bytes came from, and `mirra shards`; with --keep it stays up until
// Ctrl-C. It stops everything it started and removes its directory on
// success, failure and Ctrl-C; a failure is one line on stderr and exit 1.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { errorMessage } from '../internal/errors/message.ts';
import { createHasher } from '../internal/routing/hash.ts';
import { PortTakenError, startCluster, type Cluster, type ClusterNode } from '../tests/cluster/cluster.ts';
import { containerdRelease } from '../tests/support/containerd-release.ts';
import { generateImage, type GeneratedImage } from '../tests/support/image.ts';
import { commandsToTry, describeCluster, MIRRA_COMMAND, shardsArgs, shellLine, annotationsArgs } from './cluster-guide.ts';
import { everyByteAccounted, type ImageBlob } from './demo-accounting.ts';
import { agentMetricsLines, kubectlAnnotations, mirraShards, waitForStatus } from './demo-inspect.ts';
import { pullOn, waitForHolders, type PullContext } from './demo-pulls.ts';
import { formatBytes, pullLines, sourceLines, upstreamBytes, type PullReport } from './demo-report.ts';
import { checkEnvironment } from './preflight.ts';

const MiB = 1024 * 1024;
const LAYER_BYTES = [8 * MiB, 24 * MiB, 48 * MiB];
const UPSTREAM_BYTES_PER_SEC = 40e6;
/** The chart's hostPort: containerd reaches its node's agent at http://<node IP>:30020. */
const DEFAULT_PORT = 30020;

const HELP = `usage: npm start [-- [--keep] [--port N]]   (or: node hack/demo.ts [--keep] [--port N])

  --keep      stay up after the demo, until Ctrl-C, to look around with kubectl and mirra
  --port N    the agents' port on every node IP (default ${DEFAULT_PORT}, the chart's hostPort)
`;

interface DemoOptions {
  keep: boolean;
  port: number;
}

const started = performance.now();
const elapsed = (): string => `${((performance.now() - started) / 1000).toFixed(1)} s`;
const say = (line: string): void => console.log(line);
const step = (line: string): void => say(`[${elapsed().padStart(6)}] ${line}`);

function parseOptions(argv: string[]): DemoOptions | undefined {
  const { values } = parseArgs({ args: argv, options: { keep: { type: 'boolean' }, port: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help === true) return undefined;
  const port = values.port === undefined ? DEFAULT_PORT : Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--port: want a port number, got ${JSON.stringify(values.port)}`);
  return { keep: values.keep === true, port };
}

function imageBlobs(image: GeneratedImage): ImageBlob[] {
  return [
    { label: 'manifest', digest: image.manifestDigest, size: image.manifestSize },
    { label: 'config', digest: image.configDigest, size: image.configSize },
    ...image.layers.map((layer, i) => ({ label: `layer ${i + 1}`, digest: layer.digest, size: layer.size })),
  ];
}

/** Starts the cluster with the image pushed to its upstream. */
async function startDemoCluster(options: DemoOptions, onCluster: (cluster: Cluster) => void): Promise<{ cluster: Cluster; image: GeneratedImage }> {
  const series = containerdRelease().series;
  say('mirra demo: a 3-node cluster on loopback, as mirra runs in Kubernetes');
  say(`  each node: its own containerd ${series}, hosts.toml by \`mirra configure\`, its agent as a DaemonSet pod (pod object, readiness, EndpointSlice)`);
  say(`  the Kubernetes API stand-in; an upstream docker-registry limited to ${(UPSTREAM_BYTES_PER_SEC / 1e6).toFixed(0)} MB/s`);
  const cluster = await startCluster({
    nodes: 3,
    port: options.port,
    runConfigure: true,
    metrics: true,
    upstreamBandwidthBytesPerSec: UPSTREAM_BYTES_PER_SEC,
    // Status annotations soon after a change, for `mirra shards` and kubectl (the chart's default is 3m).
    agentArgs: ['--status-interval=1s'],
    handleSignals: false,
  });
  onCluster(cluster);
  say(`  working dir ${cluster.dir}`);
  const image = await generateImage({ dir: join(cluster.dir, 'image'), layers: LAYER_BYTES, seed: 'demo' });
  await cluster.upstream.push(image.layoutDir, 'demo/app', 'v1');
  await cluster.waitReady();
  step(`cluster up: 3 pods ready, their agents the ready endpoints of EndpointSlice ${cluster.sliceName}`);
  const layers = LAYER_BYTES.map((bytes) => bytes / MiB).join(', ');
  step(`pushed ${cluster.upstream.host}/demo/app:v1 to the upstream: manifest, config, layers of ${layers} MiB; ${formatBytes(image.totalBytes)}`);
  return { cluster, image };
}

function seconds(pull: PullReport): string {
  return `${(pull.ms / 1000).toFixed(2)} s`;
}

/** Where a pull's bytes came from, in a few words: "from the upstream", "through its own agent, from node-1", ... */
function pullSummary(pull: PullReport): string {
  const origins = new Set(pull.accounts.flatMap((account) => account.received.map((r) => (r.origin.kind === 'peer' ? r.origin.node : r.origin.kind))));
  const peers = [...origins].filter((origin) => origin.startsWith('node-')).sort();
  const parts = [...(peers.length > 0 ? [`from ${peers.join(' and ')} through its own agent`] : []), ...(origins.has('upstream') ? ['from the upstream'] : [])];
  return parts.join(', and ');
}

/** The step after a wait for the owners: how long it took, or that they did not name the holders in time. */
function holdersStep(holders: readonly string[], ms: number | undefined): string {
  const who = holders.join(' and ');
  if (ms === undefined) return `the owners of the image's keys did not name ${who} within 15 s: the next pull asks them anyway`;
  return `both owners of each of the image's keys name ${who} as holder${holders.length > 1 ? 's' : ''} (${ms.toFixed(0)} ms after the pull)`;
}

/** node-1 from the upstream, then node-2 and node-3 through their agents, once the owners name the holders. */
async function runPulls(ctx: PullContext): Promise<PullReport[]> {
  const [n1, n2, n3] = ctx.cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
  const first = await pullOn(ctx, n1);
  const cold = pullSummary(first) === 'from the upstream' ? ' (its agent answered 404: no node had it)' : '';
  step(`node-1 pulled it in ${seconds(first)}, ${pullSummary(first)}${cold}`);
  step(holdersStep(['node-1'], await waitForHolders(ctx, ['node-1'])));
  const second = await pullOn(ctx, n2);
  step(`node-2 pulled it in ${seconds(second)}, ${pullSummary(second)}`);
  step(holdersStep(['node-1', 'node-2'], await waitForHolders(ctx, ['node-1', 'node-2'])));
  const third = await pullOn(ctx, n3);
  step(`node-3 pulled it in ${seconds(third)}, ${pullSummary(third)}`);
  return [first, second, third];
}

/** The pulls, where their bytes came from, and the check that every byte is accounted for. */
async function reportPulls(cluster: Cluster, image: GeneratedImage, pulls: readonly PullReport[]): Promise<void> {
  say('');
  say("pulls (containerd's CRI, as the kubelet pulls; the speedup is against node-1's pull from the upstream):");
  for (const line of pullLines(pulls)) say(line);
  say('');
  say("where each node's bytes came from (the agents' access logs, the upstream's byte counter):");
  for (const line of sourceLines(pulls)) say(line);
  say("  (agent): streamed through the node's own agent from that peer; (307): the node's agent sent its containerd to that");
  say("  peer's agent (blobs of 16 MiB or more), which sent the bytes");
  const exact = pulls.every((pull) => everyByteAccounted(pull.accounts));
  const upstream = upstreamBytes(pulls);
  const once = upstream === image.totalBytes ? 'the image once' : `${(upstream / image.totalBytes).toFixed(2)} times the image`;
  const accounted = exact
    ? `every byte accounted for: each node received the image's ${formatBytes(image.totalBytes)}`
    : 'NOT every byte accounted for (above)';
  say(`  ${accounted}; the upstream sent ${formatBytes(upstream)} in all, ${once}`);
  say('');
  say('what each agent sent, by its metrics (mirra_http_response_bytes_total, blobs and manifests):');
  for (const line of await agentMetricsLines(cluster)) say(line);
}

/** `mirra shards` and kubectl on the annotations, once every agent has published its keys. */
async function reportCluster(cluster: Cluster): Promise<void> {
  const published = await waitForStatus(cluster);
  say('');
  say(`$ ${shellLine([...MIRRA_COMMAND, ...shardsArgs(cluster)])}${published ? '' : '   (status annotations not all written yet)'}`);
  for (const line of (await mirraShards(cluster)).split('\n')) say(`  ${line}`.trimEnd());
  say('');
  say(`the pods' status annotations, by kubectl:`);
  say(`$ ${shellLine(['kubectl', ...annotationsArgs(cluster)])}`);
  const listed = await kubectlAnnotations(cluster);
  for (const line of (listed ?? '(no kubectl at /usr/bin/kubectl)').split('\n')) say(`  ${line}`);
}

/** The commands to look around with, then nothing until Ctrl-C (the signal handler stops everything and exits). */
async function keepRunning(cluster: Cluster, ref: string): Promise<never> {
  say('kept running (--keep):');
  for (const line of describeCluster(cluster, `docker-registry, ${(UPSTREAM_BYTES_PER_SEC / 1e6).toFixed(0)} MB/s; has ${ref}`)) say(line);
  say('from the repository, try:');
  for (const line of commandsToTry(cluster, ref)) say(line);
  say('Ctrl-C stops everything.');
  return await new Promise<never>(() => {});
}

/** What is running, for the signal handler; set once the cluster has started. */
interface RunState {
  cluster: Cluster | undefined;
  interrupted: boolean;
}

async function demo(options: DemoOptions, state: RunState): Promise<void> {
  await checkEnvironment();
  const { cluster, image } = await startDemoCluster(options, (started) => (state.cluster = started));
  const ref = `${cluster.upstream.host}/demo/app:v1`;
  const pulls = await runPulls({ cluster, hasher: await createHasher(), ref, blobs: imageBlobs(image) });
  await reportPulls(cluster, image, pulls);
  await reportCluster(cluster);
  say('');
  if (options.keep) await keepRunning(cluster, ref);
  await cluster.stop();
  say(`done in ${elapsed()}: stopped everything it started and removed ${cluster.dir}`);
  say('(npm start -- --keep keeps it running, to look around with kubectl and mirra)');
}

/** Ctrl-C or SIGTERM: stop what was started, then exit 130 or 143; a second one exits at once (the exit hooks kill the rest). */
function handleSignals(state: RunState): void {
  const handle = (signal: NodeJS.Signals): void => {
    const code = signal === 'SIGINT' ? 130 : 143;
    if (state.interrupted) process.exit(code);
    state.interrupted = true;
    process.stderr.write(`\n${signal}: stopping everything the demo started\n`);
    void (state.cluster?.stop() ?? Promise.resolve()).finally(() => process.exit(code));
  };
  process.on('SIGINT', handle);
  process.on('SIGTERM', handle);
}

/** The one line a failure shows on stderr. */
function failureLine(err: unknown): string {
  if (err instanceof PortTakenError) {
    return `demo: port ${err.port} is taken on ${err.host}: is another mirra demo or cluster running? Stop it, or use another port: npm start -- --port <n>`;
  }
  return `demo: ${errorMessage(err).replace(/\s*\n\s*/g, ' ')}`;
}

async function main(): Promise<number> {
  const state: RunState = { cluster: undefined, interrupted: false };
  handleSignals(state);
  try {
    const options = parseOptions(process.argv.slice(2));
    if (options === undefined) {
      process.stdout.write(HELP);
      return 0;
    }
    await demo(options, state);
    return 0;
  } catch (err) {
    // Interrupted: what failed is what the signal stopped; the handler exits.
    if (state.interrupted) return await new Promise<number>(() => {});
    process.stderr.write(`${failureLine(err)}\n`);
    await state.cluster?.stop();
    return 1;
  }
}

void main().then((code) => process.exit(code));
