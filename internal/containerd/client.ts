// The containerd 1.6 images, content and events services over its unix
// socket, behind the narrow interfaces the rest of the agent uses. Every call
// carries the `containerd-namespace` header; unary calls have a deadline;
// responses are validated (messages.ts). The gRPC client is mirra's own
// (grpc-channel.ts), with codecs generated from ./proto (proto-codecs.ts).
import { Readable } from 'node:stream';
import { parseDigest } from '../oci/digest.ts';
import type { GrpcCall } from './grpc-call.ts';
import { createGrpcChannel } from './grpc-channel.ts';
import { GrpcStatus, type GrpcStatusCode } from './grpc-status.ts';
import { PAYLOAD_DECODERS } from './event-payloads.ts';
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
import { CONTENT_ABORT, CONTENT_INFO, CONTENT_LIST, CONTENT_LIST_STATUSES, CONTENT_READ, EVENTS_SUBSCRIBE, IMAGES_GET, IMAGES_LIST } from './proto-codecs.ts';

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

export function isGrpcStatus(err: unknown, code: GrpcStatusCode): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

function checkDigest(digest: string): void {
  if (parseDigest(digest) === undefined) throw new Error(`invalid digest ${JSON.stringify(digest.slice(0, 100))}`);
}

export function createContainerdClient(options: ContainerdClientOptions): ContainerdClient {
  const unaryTimeoutMs = options.unaryTimeoutMs ?? 10_000;
  const channel = createGrpcChannel({ socket: options.socket, metadata: { 'containerd-namespace': options.namespace } });

  return {
    namespace: options.namespace,
    async listImages() {
      const response = await channel.unary(IMAGES_LIST, { filters: [] }, unaryTimeoutMs);
      return validOnly(arrayOf(field(response, 'images'), 'images'), parseImage);
    },
    async getImage(name) {
      try {
        return parseImage(field(await channel.unary(IMAGES_GET, { name }, unaryTimeoutMs), 'image'));
      } catch (err) {
        // containerd answers InvalidArgument for names it could never store.
        if (isGrpcStatus(err, GrpcStatus.NOT_FOUND) || isGrpcStatus(err, GrpcStatus.INVALID_ARGUMENT)) return undefined;
        throw err;
      }
    },
    async contentInfo(digest) {
      checkDigest(digest);
      try {
        return parseContentInfo(field(await channel.unary(CONTENT_INFO, { digest }, unaryTimeoutMs), 'info'));
      } catch (err) {
        if (isGrpcStatus(err, GrpcStatus.NOT_FOUND)) return undefined;
        throw err;
      }
    },
    async listIngests() {
      const response = await channel.unary(CONTENT_LIST_STATUSES, { filters: [] }, unaryTimeoutMs);
      return validOnly(arrayOf(field(response, 'statuses'), 'statuses'), parseIngestStatus);
    },
    async abortIngest(ref) {
      try {
        await channel.unary(CONTENT_ABORT, { ref }, unaryTimeoutMs);
      } catch (err) {
        if (!isGrpcStatus(err, GrpcStatus.NOT_FOUND)) throw err;
      }
    },
    listContentInfo: () =>
      new Promise((resolve, reject) => {
        const infos: ContentInfo[] = [];
        const handlers = {
          onMessage(message: unknown) {
            try {
              infos.push(...validOnly(arrayOf(field(message, 'info'), 'info'), parseContentInfo));
            } catch (err) {
              call.cancel();
              reject(err instanceof Error ? err : new Error(String(err)));
            }
          },
          onEnd: (err: Error | undefined) => (err === undefined ? resolve(infos) : reject(err)),
        };
        const call = channel.serverStream(CONTENT_LIST, { filters: [] }, handlers, unaryTimeoutMs * 6);
      }),
    readContent(digest, offset = 0, sizeBytes = 0) {
      checkDigest(digest);
      return grpcBytes((handlers) => channel.serverStream(CONTENT_READ, { digest, offset, size: sizeBytes }, handlers));
    },
    subscribe(filters, handlers) {
      return subscribeCall((callHandlers) => channel.serverStream(EVENTS_SUBSCRIBE, { filters }, callHandlers), handlers);
    },
    decodeEvent(event) {
      // type_url is the message name, possibly behind a URL prefix (types.example.com/pkg.Msg).
      const type = event.typeUrl.slice(event.typeUrl.lastIndexOf('/') + 1);
      const decode = PAYLOAD_DECODERS.get(type);
      return decode === undefined ? undefined : { type, message: decode(event.value) };
    },
    isReady: () => channel.isReady(),
    close() {
      channel.close();
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

/** Opens a server stream with the given handlers. */
type StreamOpener = (handlers: { onMessage(message: unknown): void; onEnd(err: Error | undefined): void }) => GrpcCall;

/** The `data` of a stream of ReadContentResponse as a byte stream, with backpressure. */
function grpcBytes(open: StreamOpener): Readable {
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
  const call = open({
    onMessage(message) {
      const data = field(message, 'data');
      if (!Buffer.isBuffer(data)) {
        out.destroy(new Error('containerd Read: message without data'));
        return;
      }
      if (data.length > 0 && !out.push(data)) call.pause();
    },
    onEnd(err) {
      if (done) return;
      done = true;
      if (err === undefined) out.push(null);
      else out.destroy(err);
    },
  });
  return out;
}

function subscribeCall(open: StreamOpener, handlers: SubscriptionHandlers): Subscription {
  let active = true;
  const finish = (err: Error): void => {
    if (!active) return;
    active = false;
    handlers.onEnd(err);
  };
  const call = open({
    onMessage(message) {
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
    },
    onEnd: (err) => finish(err ?? new Error('containerd closed the event stream')),
  });
  return {
    cancel() {
      active = false;
      call.cancel();
    },
  };
}
