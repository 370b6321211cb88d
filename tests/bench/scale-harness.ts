// bench:scale's owner lookups on the real 10-node harness (real containerd and
// agents, peer auth on): an image pulled on three nodes, then lookups of its
// keys and of keys nobody has, each sent to the key's first owner (from the
// ready endpoints, as an agent picks it) over a keep-alive connection, timed
// one by one. The reference is /readyz on the same agents, the same way: an
// answer that does no work.
import { request, Agent } from 'node:http';
import { join } from 'node:path';
import { HOLDERS_PATH, keyHex, parseHoldersAnswer } from '../../internal/owners/protocol.ts';
import type { Hasher } from '../../internal/routing/hash.ts';
import { keyNumber } from '../../internal/routing/owner-store.ts';
import { startCluster, type Cluster } from '../cluster/cluster.ts';
import { ownersOf } from '../cluster/holders.ts';
import { generateImage } from '../support/image.ts';
import { waitFor } from '../support/process.ts';
import { percentile } from './stats.ts';

const NODES = 10;
const LOOKUPS = 4000;
const WARMUP = 400;
/** The readiness probe's period: the chart's is 5 s; the harness's default 250 ms (for quick tests) is 40 probes a second on two cores, which this measure is not about. */
const PROBE_INTERVAL_MS = 2000;

export interface OwnerLookupResult {
  count: number;
  p50Ms: number;
  p99Ms: number;
  readyzP99Ms: number;
  /** In the owners themselves, from their access-log lines: request in to response out. */
  serverP99Ms: number;
}

/** The owners' own latency of the lookups, from every agent's access log. */
async function serverLatencies(cluster: Cluster): Promise<number[]> {
  const all: number[] = [];
  for (const node of cluster.nodes) {
    for (const line of await node.agent.accessLines()) if (line.handler === 'holders' && typeof line.latencyMs === 'number') all.push(line.latencyMs);
  }
  return all.sort((a, b) => a - b);
}

function timedGet(agent: Agent, url: string): Promise<{ ms: number; body: string }> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`${url}: ${res.statusCode} ${body}`));
        else resolve({ ms: Number(process.hrtime.bigint() - started) / 1e6, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

function agentUrl(cluster: Cluster, pod: string): string {
  const node = cluster.nodes.find((n) => n.podName === pod);
  if (node === undefined) throw new Error(`no node runs ${pod}`);
  return node.agent.url;
}

async function timeAll(agent: Agent, urls: readonly string[]): Promise<number[]> {
  const times: number[] = [];
  for (const [i, url] of urls.entries()) {
    const { ms, body } = await timedGet(agent, url);
    if (url.includes(HOLDERS_PATH)) parseHoldersAnswer(JSON.parse(body));
    if (i >= WARMUP) times.push(ms);
  }
  return times.sort((a, b) => a - b);
}

export async function measureOwnerLookups(hasher: Hasher): Promise<OwnerLookupResult> {
  const cluster = await startCluster({ nodes: NODES, probeIntervalMs: PROBE_INTERVAL_MS });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    await cluster.waitReady(120_000);
    const image = await generateImage({ dir: join(cluster.dir, 'img'), layers: [64 * 1024, 32 * 1024, 16 * 1024], seed: 'bench-scale' });
    await cluster.upstream.push(image.layoutDir, 'scale/app', 'v1');
    for (const node of cluster.nodes.slice(0, 3)) await node.pull(`${cluster.upstream.host}/scale/app:v1`);
    const held = [image.manifestDigest, image.configDigest, ...image.layers.map((l) => l.digest)];
    const unknown = Array.from(
      { length: 20 },
      (_, i) => `sha256:${hasher.digest(`none-${i}a`)}${hasher.digest(`none-${i}b`)}${hasher.digest(`none-${i}c`)}${hasher.digest(`none-${i}d`)}`,
    );
    const keys = [...held, ...unknown];
    const urlOf = (key: string): string => `${agentUrl(cluster, ownersOf(cluster, hasher, key)[0]!)}${HOLDERS_PATH}${keyHex(keyNumber(hasher.hash(key)))}`;
    const holdersOf = async (key: string): Promise<number> => parseHoldersAnswer(JSON.parse((await timedGet(agent, urlOf(key))).body)).holders.length;
    await waitFor('the owners to know the holders', async () => (await holdersOf(held[2]!)) === 3, 10_000, 100);
    const lookups = await timeAll(
      agent,
      Array.from({ length: LOOKUPS }, (_, i) => urlOf(keys[i % keys.length]!)),
    );
    const readyz = await timeAll(
      agent,
      Array.from({ length: LOOKUPS }, (_, i) => `${cluster.nodes[i % NODES]!.agent.url}/readyz`),
    );
    const server = await serverLatencies(cluster);
    return {
      count: lookups.length,
      p50Ms: percentile(lookups, 0.5),
      p99Ms: percentile(lookups, 0.99),
      readyzP99Ms: percentile(readyz, 0.99),
      serverP99Ms: percentile(server, 0.99),
    };
  } finally {
    agent.destroy();
    await cluster.stop();
  }
}
