// Pulls through containerd's CRI plugin (ImageService.PullImage over its gRPC
// socket), as the kubelet does: containerd fetches and unpacks in the daemon,
// resolving registries through its `config_path` hosts directory, in the
// k8s.io namespace; with credentials, the request carries them as the kubelet
// passes an image pull secret (AuthConfig username and password, no server
// address). No crictl here: the call is made with the CRI's own message
// definitions (proto/cri.proto).
import { Client, credentials as grpcCredentials, Metadata } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import { isRecord } from '../../internal/json/narrow.ts';

const PROTO = fileURLToPath(new URL('./proto/cri.proto', import.meta.url));
const DEFAULT_TIMEOUT_MS = 15 * 60_000;

/** A pull secret's registry credentials. */
export interface CriCredentials {
  username: string;
  password: string;
  /** AuthConfig.server_address: containerd then offers them to that host only. Default empty, as the kubelet sends. */
  serverAddress?: string;
}

export interface CriPullOptions {
  /** Default 15 min. */
  timeoutMs?: number;
  /** Default none: an anonymous pull. */
  credentials?: CriCredentials;
}

/**
 * PullImage of `ref` on the containerd at `socket`; resolves with the image id
 * (the config digest). `options` may be a timeout in ms, as older callers pass it.
 */
export async function criPull(socket: string, ref: string, options: CriPullOptions | number = {}): Promise<string> {
  const { timeoutMs = DEFAULT_TIMEOUT_MS, credentials } = typeof options === 'number' ? { timeoutMs: options } : options;
  const definition = loadSync(PROTO, { keepCase: false, defaults: true });
  const service = definition['runtime.v1.ImageService'];
  if (service === undefined || 'format' in service || service.PullImage === undefined) throw new Error('cri.proto: no ImageService.PullImage');
  const method = service.PullImage;
  const request = {
    image: { image: ref },
    ...(credentials === undefined
      ? {}
      : { auth: { username: credentials.username, password: credentials.password, serverAddress: credentials.serverAddress ?? '' } }),
  };
  const client = new Client(`unix://${socket}`, grpcCredentials.createInsecure());
  try {
    const response = await new Promise<unknown>((resolve, reject) => {
      client.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        new Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, value) => (err ? reject(new Error(`CRI PullImage ${ref}: ${err.message}`)) : resolve(value)),
      );
    });
    const imageRef = isRecord(response) ? response.imageRef : undefined;
    if (typeof imageRef !== 'string' || imageRef === '') throw new Error(`CRI PullImage ${ref}: no image id in the answer`);
    return imageRef;
  } finally {
    client.close();
  }
}
