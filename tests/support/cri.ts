// Pulls through containerd's CRI plugin (ImageService.PullImage over its gRPC
// socket), as the kubelet does: containerd fetches and unpacks in the daemon,
// resolving registries through its `config_path` hosts directory, in the
// k8s.io namespace. No crictl here: the call is made with the CRI's own
// message definitions (proto/cri.proto).
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

const PROTO = fileURLToPath(new URL('./proto/cri.proto', import.meta.url));

/** PullImage of `ref` on the containerd at `socket`; resolves with the image id (the config digest). */
export async function criPull(socket: string, ref: string, timeoutMs = 15 * 60_000): Promise<string> {
  const definition = loadSync(PROTO, { keepCase: false, defaults: true });
  const service = definition['runtime.v1.ImageService'];
  if (service === undefined || 'format' in service || service.PullImage === undefined) throw new Error('cri.proto: no ImageService.PullImage');
  const method = service.PullImage;
  const client = new Client(`unix://${socket}`, credentials.createInsecure());
  try {
    const response = await new Promise<unknown>((resolve, reject) => {
      client.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        { image: { image: ref } },
        new Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, value) => (err ? reject(new Error(`CRI PullImage ${ref}: ${err.message}`)) : resolve(value)),
      );
    });
    const imageRef = (response as { imageRef?: unknown } | undefined)?.imageRef;
    if (typeof imageRef !== 'string' || imageRef === '') throw new Error(`CRI PullImage ${ref}: no image id in the answer`);
    return imageRef;
  } finally {
    client.close();
  }
}
