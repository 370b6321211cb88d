// Loads mirra's own .proto files for the parts of the containerd 1.6 API it
// uses (./proto) and hands out the gRPC method definitions and message codecs.
// Options: camelCase field names, int64 as Number (sizes stay far below 2^53),
// defaults filled in, so decoded messages have a predictable shape; they are
// still validated as `unknown` by the callers.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSync, type MethodDefinition, type MessageTypeDefinition, type PackageDefinition } from '@grpc/proto-loader';

const PROTO_DIR = join(dirname(fileURLToPath(import.meta.url)), 'proto');
const FILES = ['images.proto', 'content.proto', 'events.proto', 'image_events.proto', 'content_events.proto'];

export type Method = MethodDefinition<object, unknown>;
export type Decoder = (bytes: Buffer) => unknown;

export interface ContainerdProtos {
  images: { get: Method; list: Method };
  content: { info: Method; list: Method; read: Method; listStatuses: Method; abort: Method };
  events: { subscribe: Method };
  /** Decoders of event payloads by message name (the Any's type_url without prefix). */
  payloads: ReadonlyMap<string, Decoder>;
}

export const EVENT_PAYLOADS = {
  imageCreate: 'containerd.services.images.v1.ImageCreate',
  imageUpdate: 'containerd.services.images.v1.ImageUpdate',
  imageDelete: 'containerd.services.images.v1.ImageDelete',
  contentDelete: 'containerd.events.ContentDelete',
} as const;

function method(def: PackageDefinition, service: string, name: string): Method {
  const svc = def[service];
  if (svc === undefined || 'format' in svc) throw new Error(`proto: no service ${service}`);
  const m = svc[name];
  if (m === undefined) throw new Error(`proto: no method ${service}/${name}`);
  return m as Method;
}

function decoder(def: PackageDefinition, message: string): Decoder {
  const type = def[message];
  if (type === undefined || !('format' in type) || type.format !== 'Protocol Buffer 3 DescriptorProto') {
    throw new Error(`proto: no message ${message}`);
  }
  return (type as MessageTypeDefinition<object, unknown>).deserialize;
}

export function loadContainerdProtos(): ContainerdProtos {
  const def = loadSync(
    FILES.map((f) => join(PROTO_DIR, f)),
    { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_DIR] },
  );
  return {
    images: {
      get: method(def, 'containerd.services.images.v1.Images', 'Get'),
      list: method(def, 'containerd.services.images.v1.Images', 'List'),
    },
    content: {
      info: method(def, 'containerd.services.content.v1.Content', 'Info'),
      list: method(def, 'containerd.services.content.v1.Content', 'List'),
      read: method(def, 'containerd.services.content.v1.Content', 'Read'),
      listStatuses: method(def, 'containerd.services.content.v1.Content', 'ListStatuses'),
      abort: method(def, 'containerd.services.content.v1.Content', 'Abort'),
    },
    events: { subscribe: method(def, 'containerd.services.events.v1.Events', 'Subscribe') },
    payloads: new Map(Object.values(EVENT_PAYLOADS).map((name) => [name, decoder(def, name)])),
  };
}
