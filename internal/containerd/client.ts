// gRPC client for the containerd 1.6 images, content and events services over
// its unix socket. Every call carries the `containerd-namespace` header; unary
// calls have a deadline; responses are validated (messages.ts).
import { Client, connectivityState, credentials, Metadata, status, type ServiceError, type ClientReadableStream } from '@grpc/grpc-js';
import { Readable } from 'node:stream';
import { parseDigest } from '../oci/digest.ts';
import { loadContainerdProtos, type Method } from './protos.ts';
import {
  arrayOf,
  field,
  parseContentInfo,
  parseEnvelope,
  parseImage,
  parseIngestStatus,
  ProtocolError,
  type ContentInfo,
  type Envelope,
  type ImageRecord,
  type IngestStatus,
} from './messages.ts';

export interface ContainerdClientOptions {
  /** Path of containerd's gRPC socket, e.g. /run/containerd/containerd.sock */
  socket: string;
  /** containerd namespace, e.g. k8s.io */
  namespace: string;
  unaryTimeoutMs?: number;
}

export interface Subscription {
  /** Ends the stream; no handler is called afterwards. */
  cancel(): void;
}

export interface SubscriptionHandlers {
  onEnvelope(envelope: Envelope): void;
  /** The stream ended (containerd went away, or an error); not called after cancel(). */
  onEnd(err: Error): void;
}

// Narrow views of the client, one per need (1-4 methods each): a consumer
// names the one it uses, so a unit test hands it an in-memory twin
// (containerdtest/memory.ts) instead of a real containerd.

/** Images: the list, and one by name. */
export interface ImageLister {
  listImages(): Promise<ImageRecord[]>;
  /** undefined when containerd has no image of that name. */
  getImage(name: string): Promise<ImageRecord | undefined>;
}

/** Presence and size of content. */
export interface ContentInfoSource {
  /** undefined when the content is absent (in this namespace). Rejects on a malformed digest. */
  contentInfo(digest: string): Promise<ContentInfo | undefined>;
}

/** Content bytes over gRPC (the fallback when the content directory cannot be read). */
export interface ContentReader {
  /** The bytes from `offset`, `sizeBytes` of them (0 = to the end), via the gRPC Read stream. */
  readContent(digest: string, offset?: number, sizeBytes?: number): Readable;
}

/** Ingests in progress, and dropping one. */
export interface IngestControl {
  /** The ingests in progress in the namespace (content ListStatuses). */
  listIngests(): Promise<IngestStatus[]>;
  /** Drops an ingest and what was written to it (content Abort); resolves when it is gone or was not there. */
  abortIngest(ref: string): Promise<void>;
}

/** The events service. */
export interface EventSubscriber {
  subscribe(filters: string[], handlers: SubscriptionHandlers): Subscription;
  /** Decodes an event payload whose type this client knows; undefined for other types. */
  decodeEvent(event: { typeUrl: string; value: Buffer }): { type: string; message: unknown } | undefined;
  /** True while the channel to containerd is connected. */
  isReady(): boolean;
}

/** What walking images and serving their content needs: images, content Info, content Read. */
export type ImageContentClient = ImageLister & ContentInfoSource & ContentReader;

export interface ContainerdClient extends ImageLister, ContentInfoSource, ContentReader, IngestControl, EventSubscriber {
  readonly namespace: string;
  /** Every piece of content in the namespace (content List). */
  listContentInfo(): Promise<ContentInfo[]>;
  close(): void;
}

export function isGrpcStatus(err: unknown, code: status): boolean {
  return typeof err === 'object' && err !== null && (err as Partial<ServiceError>).code === code;
}

/** The gRPC channel to containerd, and unary and server-stream calls carrying the namespace header. */
interface Channel {
  grpc: Client;
  unary(m: Method, request: object): Promise<unknown>;
  stream(m: Method, request: object, deadlineMs?: number): ClientReadableStream<unknown>;
}

function openChannel(options: ContainerdClientOptions, unaryTimeoutMs: number): Channel {
  const grpc = new Client(`unix://${options.socket}`, credentials.createInsecure(), {
    // Reconnect soon after containerd restarts (the defaults back off to 2 minutes).
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 2000,
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  });
  const metadata = (): Metadata => {
    const md = new Metadata();
    md.set('containerd-namespace', options.namespace);
    return md;
  };
  return {
    grpc,
    unary: (m, request) =>
      new Promise((resolve, reject) => {
        grpc.makeUnaryRequest(
          m.path,
          m.requestSerialize,
          m.responseDeserialize,
          request,
          metadata(),
          { deadline: Date.now() + unaryTimeoutMs },
          (err, response) => (err ? reject(err) : resolve(response)),
        );
      }),
    stream: (m, request, deadlineMs) =>
      grpc.makeServerStreamRequest(
        m.path,
        m.requestSerialize,
        m.responseDeserialize,
        request,
        metadata(),
        deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs },
      ),
  };
}

function checkDigest(digest: string): void {
  if (parseDigest(digest) === undefined) throw new Error(`invalid digest ${JSON.stringify(digest.slice(0, 100))}`);
}

export function createContainerdClient(options: ContainerdClientOptions): ContainerdClient {
  const protos = loadContainerdProtos();
  const unaryTimeoutMs = options.unaryTimeoutMs ?? 10_000;
  const { grpc, unary, stream } = openChannel(options, unaryTimeoutMs);

  return {
    namespace: options.namespace,
    async listImages() {
      const response = await unary(protos.images.list, { filters: [] });
      return validOnly(arrayOf(field(response, 'images'), 'images'), parseImage);
    },
    async getImage(name) {
      try {
        return parseImage(field(await unary(protos.images.get, { name }), 'image'));
      } catch (err) {
        // containerd answers InvalidArgument for names it could never store.
        if (isGrpcStatus(err, status.NOT_FOUND) || isGrpcStatus(err, status.INVALID_ARGUMENT)) return undefined;
        throw err;
      }
    },
    async contentInfo(digest) {
      checkDigest(digest);
      try {
        return parseContentInfo(field(await unary(protos.content.info, { digest }), 'info'));
      } catch (err) {
        if (isGrpcStatus(err, status.NOT_FOUND)) return undefined;
        throw err;
      }
    },
    async listIngests() {
      const response = await unary(protos.content.listStatuses, { filters: [] });
      return validOnly(arrayOf(field(response, 'statuses'), 'statuses'), parseIngestStatus);
    },
    async abortIngest(ref) {
      try {
        await unary(protos.content.abort, { ref });
      } catch (err) {
        if (!isGrpcStatus(err, status.NOT_FOUND)) throw err;
      }
    },
    async listContentInfo() {
      const call = stream(protos.content.list, { filters: [] }, unaryTimeoutMs * 6);
      const infos: ContentInfo[] = [];
      for await (const message of call) infos.push(...validOnly(arrayOf(field(message, 'info'), 'info'), parseContentInfo));
      return infos;
    },
    readContent(digest, offset = 0, sizeBytes = 0) {
      checkDigest(digest);
      return grpcBytes(stream(protos.content.read, { digest, offset, size: sizeBytes }));
    },
    subscribe(filters, handlers) {
      const call = stream(protos.events.subscribe, { filters });
      return subscribeCall(call, handlers);
    },
    decodeEvent(event) {
      // type_url is the message name, possibly behind a URL prefix (types.example.com/pkg.Msg).
      const type = event.typeUrl.slice(event.typeUrl.lastIndexOf('/') + 1);
      const decode = protos.payloads.get(type);
      return decode === undefined ? undefined : { type, message: decode(event.value) };
    },
    isReady() {
      return grpc.getChannel().getConnectivityState(false) === connectivityState.READY;
    },
    close() {
      grpc.close();
    },
  };
}

/** The items that parse; an image with, say, an unsupported digest algorithm is left out rather than failing the list. */
function validOnly<T>(items: unknown[], parse: (item: unknown) => T): T[] {
  const out: T[] = [];
  for (const item of items) {
    try {
      out.push(parse(item));
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
    }
  }
  return out;
}

/** The `data` of a stream of ReadContentResponse as a byte stream, with backpressure. */
function grpcBytes(call: ClientReadableStream<unknown>): Readable {
  let done = false;
  const out = new Readable({
    highWaterMark: 1024 * 1024,
    read() {
      call.resume();
    },
    destroy(err, callback) {
      if (!done) {
        done = true;
        call.cancel();
      }
      callback(err);
    },
  });
  call.on('data', (message: unknown) => {
    const data = field(message, 'data');
    if (!Buffer.isBuffer(data)) {
      out.destroy(new Error('containerd Read: message without data'));
      return;
    }
    if (data.length > 0 && !out.push(data)) call.pause();
  });
  call.on('end', () => {
    done = true;
    out.push(null);
  });
  call.on('error', (err) => {
    if (done) return;
    done = true;
    out.destroy(err);
  });
  return out;
}

function subscribeCall(call: ClientReadableStream<unknown>, handlers: SubscriptionHandlers): Subscription {
  let active = true;
  const finish = (err: Error): void => {
    if (!active) return;
    active = false;
    handlers.onEnd(err);
  };
  call.on('data', (message: unknown) => {
    if (!active) return;
    let envelope: Envelope;
    try {
      envelope = parseEnvelope(message);
    } catch (err) {
      finish(err instanceof Error ? err : new Error(String(err)));
      call.cancel();
      return;
    }
    handlers.onEnvelope(envelope);
  });
  call.on('error', (err) => finish(err));
  call.on('end', () => finish(new Error('containerd closed the event stream')));
  return {
    cancel() {
      active = false;
      call.cancel();
    },
  };
}
