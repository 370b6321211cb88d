// `npm run cluster -- --nodes 3 [--bandwidth 20MB] [--zones a,b]`: brings up a
// local mirra cluster (tests/cluster) by hand, pushes a small image to the
// upstream, prints how to use it with kubectl and ctr, prints the
// EndpointSlice whenever it changes, and runs until Ctrl-C, which stops
// everything it started.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startCluster, type Cluster } from '../tests/cluster/cluster.ts';
import { parseSliceEndpoints } from '../tests/cluster/objects.ts';
import { generateImage } from '../tests/support/image.ts';
import { commandsToTry, describeCluster } from './cluster-guide.ts';
import { checkEnvironment } from './preflight.ts';

const HELP = `usage: node hack/cluster.ts [--nodes N] [--bandwidth RATE] [--zones a,b,...] [--namespace NS]

  --nodes N         how many nodes (default 3): node-<i> on 127.0.0.<i+1>
  --bandwidth RATE  limit the upstream registry, e.g. 20MB (= 20 MB/s), 512kB, 1GiB (default: unlimited)
  --zones LIST      topology.kubernetes.io/zone of the nodes, round-robin
  --namespace NS    namespace of the pods, Service and EndpointSlice (default mirra)
`;

const UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };

/** "20MB", "20 MB/s", "512kB", "1GiB", "1000000" -> bytes per second. */
export function parseBandwidth(raw: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*(?:\/s)?\s*$/i.exec(raw);
  const unit = UNITS[(match?.[2] ?? '').toLowerCase()];
  if (match === null || unit === undefined) throw new Error(`--bandwidth: ${JSON.stringify(raw)} is not a rate like 20MB or 512kB`);
  const bytesPerSec = Math.round(Number(match[1]) * unit);
  if (bytesPerSec < 1) throw new Error('--bandwidth must be at least 1 byte/s');
  return bytesPerSec;
}

function describeSlice(cluster: Cluster): string {
  const endpoints = parseSliceEndpoints(cluster.api.get('EndpointSlice', cluster.namespace, cluster.sliceName) ?? {});
  if (endpoints.length === 0) return 'no endpoints';
  return endpoints.map((e) => `${e.nodeName} ${e.targetRef.name} ${e.conditions.ready ? 'ready' : 'NOT READY'}`).join(', ');
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      nodes: { type: 'string', default: '3' },
      bandwidth: { type: 'string' },
      zones: { type: 'string' },
      namespace: { type: 'string', default: 'mirra' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  const nodes = Number(values.nodes);
  if (!/^\d+$/.test(values.nodes) || nodes < 1) throw new Error(`--nodes: want a positive integer, got ${JSON.stringify(values.nodes)}`);
  const bandwidth = values.bandwidth === undefined ? undefined : parseBandwidth(values.bandwidth);
  const zones = values.zones === undefined ? undefined : values.zones.split(',').filter((zone) => zone !== '');

  await checkEnvironment();
  console.log(`starting ${nodes} node(s)...`);
  const cluster = await startCluster({ nodes, upstreamBandwidthBytesPerSec: bandwidth, zones, namespace: values.namespace });
  await cluster.waitReady(60_000);
  const image = await generateImage({ dir: join(cluster.dir, 'image'), layers: [1 << 20, 4 << 20], seed: 'cluster' });
  await cluster.upstream.push(image.layoutDir, 'demo/app', 'v1');
  const ref = `${cluster.upstream.host}/demo/app:v1`;
  const limit = bandwidth === undefined ? 'unlimited' : `limited to ${(bandwidth / 1e6).toFixed(1)} MB/s`;

  const lines = [
    '',
    `mirra cluster: ${nodes} node(s), namespace ${cluster.namespace}`,
    ...describeCluster(cluster, `docker-registry, ${limit}; pushed ${ref}`),
    '',
    'try (from the repository):',
    ...commandsToTry(cluster, ref),
    '',
    `pids: ${cluster.pids().join(' ')}`,
    'Ctrl-C stops everything.',
    '',
    `endpoints: ${describeSlice(cluster)}`,
  ];
  console.log(lines.join('\n'));
  cluster.api.store.subscribe((event) => {
    if (event.def.kind !== 'EndpointSlice' || event.object.metadata['name'] !== cluster.sliceName || event.type === 'DELETED') return;
    console.log(`${new Date().toISOString()} endpoints: ${describeSlice(cluster)}`);
  });
  // The cluster's own SIGINT/SIGTERM handler stops everything and exits; the servers keep us running until then.
  return await new Promise<number>(() => {});
}

if (import.meta.main) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`cluster: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
