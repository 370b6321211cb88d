// The two-node fixture of the integration tests: a docker-registry upstream
// with generated images, containerd "node A" that pulled them, A's agent
// mirroring the upstream, and containerd "node B" (empty) to pull through it
// with its CRI plugin, as the kubelet pulls (nodeB.criPull), its registries
// from `nodeBHostsDir`.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startAgent, type AgentOptions, type TestAgent } from './agent.ts';
import { startContainerd, type TestContainerd } from './containerd.ts';
import { generateImage, type GeneratedImage } from './image.ts';
import { freePort } from './process.ts';
import { startUpstream, type Upstream } from './upstream.ts';

export interface NodePairOptions {
  /** Temp dir prefix, e.g. `mirra-it-mirror-`. */
  prefix: string;
  /** Images pushed as `<repository>:v1` and pulled by node A. */
  images: Array<{ repository: string; layers: number[]; seed: string }>;
  /** Extra agent options (e.g. containerdConfigPath for the preflight: `nodeA => ...`). */
  agent?: (nodeA: TestContainerd) => Partial<AgentOptions>;
}

export interface NodePair {
  dir: string;
  upstream: Upstream;
  /** In the order of `options.images`. */
  images: GeneratedImage[];
  nodeA: TestContainerd;
  nodeB: TestContainerd;
  /** Node B's containerd hosts dir (the CRI's registry config_path), empty at the start. */
  nodeBHostsDir: string;
  /** Node A's agent on 127.0.0.2. */
  agent: TestAgent;
  /** Stops whatever was started and removes the dir; safe after a partial start. */
  stop(): Promise<void>;
}

export async function startNodePair(options: NodePairOptions): Promise<NodePair> {
  const dir = await mkdtemp(join(tmpdir(), options.prefix));
  const started: Partial<Omit<NodePair, 'dir' | 'images' | 'nodeBHostsDir' | 'stop'>> = {};
  const nodeBHostsDir = join(dir, 'node-b', 'certs.d');
  const stop = async (): Promise<void> => {
    await started.agent?.stop();
    await started.nodeA?.stop();
    await started.nodeB?.stop();
    await started.upstream?.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const upstream = (started.upstream = await startUpstream({ dir: join(dir, 'upstream') }));
    const images: GeneratedImage[] = [];
    for (const spec of options.images) {
      const image = await generateImage({ dir: join(dir, `image-${spec.repository.replaceAll('/', '-')}`), layers: spec.layers, seed: spec.seed });
      await upstream.push(image.layoutDir, spec.repository, 'v1');
      images.push(image);
    }
    const nodeA = (started.nodeA = await startContainerd({ dir: join(dir, 'node-a'), name: 'containerd-a' }));
    const nodeB = (started.nodeB = await startContainerd({ dir: join(dir, 'node-b'), name: 'containerd-b', cri: { hostsDir: nodeBHostsDir } }));
    for (const spec of options.images) await nodeA.pull(`${upstream.host}/${spec.repository}:v1`, { plainHttp: true });
    const agent = (started.agent = await startAgent({
      dir,
      name: 'agent-a',
      host: '127.0.0.2',
      port: await freePort('127.0.0.2'),
      containerdSock: nodeA.socket,
      contentPath: nodeA.contentDir,
      mirroredRegistries: [upstream.host],
      ...options.agent?.(nodeA),
    }));
    return { dir, upstream, images, nodeA, nodeB, nodeBHostsDir, agent, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
