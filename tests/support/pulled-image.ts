// One node's worth of a real image: a docker-registry upstream with a
// generated image pushed as `<repository>:v1`, and a containerd that pulled
// it. For the tests and benches that serve a node's own content (no peers).
import { join } from 'node:path';
import { startContainerd, type TestContainerd } from './containerd.ts';
import { generateImage, type GeneratedImage, type GeneratedLayer } from './image.ts';
import { startUpstream, type Upstream } from './upstream.ts';

export interface PulledImageOptions {
  /** Where the upstream, the image and containerd keep their files. */
  dir: string;
  repository: string;
  layers: number[];
  seed: string;
}

export interface PulledImage {
  upstream: Upstream;
  containerd: TestContainerd;
  image: GeneratedImage;
  /** The image's first layer. */
  layer: GeneratedLayer;
  /** Stops containerd and the upstream; safe after a partial start. */
  stop(): Promise<void>;
}

export async function startPulledImage(options: PulledImageOptions): Promise<PulledImage> {
  const started: { upstream?: Upstream; containerd?: TestContainerd } = {};
  const stop = async (): Promise<void> => {
    await started.containerd?.stop();
    await started.upstream?.stop();
  };
  try {
    const image = await generateImage({ dir: join(options.dir, 'image'), layers: options.layers, seed: options.seed });
    const layer = image.layers[0];
    if (layer === undefined) throw new Error('no layer');
    const upstream = (started.upstream = await startUpstream({ dir: join(options.dir, 'upstream') }));
    await upstream.push(image.layoutDir, options.repository, 'v1');
    const containerd = (started.containerd = await startContainerd({ dir: join(options.dir, 'containerd') }));
    await containerd.pull(`${upstream.host}/${options.repository}:v1`, { plainHttp: true });
    return { upstream, containerd, image, layer, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
