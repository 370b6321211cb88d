import { join } from 'node:path';
import { startCluster } from '../../cluster/cluster.ts';
import { generateImage } from '../../support/image.ts';
const MiB = 1024 * 1024;
const cluster = await startCluster({ nodes: 5, upstreamBandwidthBytesPerSec: 20e6, agentArgs: ['--log-level', 'debug'], keepDir: true });
try {
  await cluster.waitReady();
  const layers = [60, 60, 60, 60, 60].map((n) => n * MiB);
  const two = await generateImage({ dir: join(cluster.dir, 'img-2'), layers, seed: 'probe-2' });
  const three = await generateImage({ dir: join(cluster.dir, 'img-3'), layers, seed: 'probe-3' });
  await cluster.upstream.push(two.layoutDir, 'probe/p', 'two');
  await cluster.upstream.push(three.layoutDir, 'probe/p', 'three');
  const [n1, ...rest] = cluster.nodes;
  await n1!.pull(`${cluster.upstream.host}/probe/p:two`);
  await new Promise((r) => setTimeout(r, 2500));
  cluster.upstream.resetCounts();
  console.log('4 at once from node-1 ...', new Date().toISOString());
  await Promise.all(rest.map((n) => n.pull(`${cluster.upstream.host}/probe/p:two`)));
  console.log('upstream bytes', cluster.upstream.counts().bytes, cluster.upstream.counts().requests.filter((r) => r.kind === 'blob').map((r) => r.path.slice(-12) + ' ' + r.bytes));
  await Promise.all(cluster.nodes.map((n) => n.containerd.removeAllImages()));
  cluster.upstream.resetCounts();
  console.log('cold wave ...', new Date().toISOString());
  await Promise.all(cluster.nodes.map((n) => n.pull(`${cluster.upstream.host}/probe/p:three`)));
  console.log('upstream bytes', cluster.upstream.counts().bytes, cluster.upstream.counts().requests.filter((r) => r.kind === 'blob').map((r) => r.path.slice(-12) + ' ' + r.bytes));
  console.log('dir', cluster.dir);
} finally {
  await cluster.stop();
}
