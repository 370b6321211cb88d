// The event payloads mirra reads from containerd's event envelopes, by
// message name (the Any's type_url without its prefix), with their decoders
// (generated from ./proto, proto-codecs.ts). Decoded payloads are still
// validated as `unknown` by their readers (events.ts).
import { decodeContentDelete, decodeImageCreate, decodeImageDelete, decodeImageUpdate } from './proto-codecs.ts';

export type Decoder = (bytes: Buffer) => unknown;

export const EVENT_PAYLOADS = {
  imageCreate: 'containerd.services.images.v1.ImageCreate',
  imageUpdate: 'containerd.services.images.v1.ImageUpdate',
  imageDelete: 'containerd.services.images.v1.ImageDelete',
  contentDelete: 'containerd.events.ContentDelete',
} as const;

export const PAYLOAD_DECODERS: ReadonlyMap<string, Decoder> = new Map<string, Decoder>([
  [EVENT_PAYLOADS.imageCreate, decodeImageCreate],
  [EVENT_PAYLOADS.imageUpdate, decodeImageUpdate],
  [EVENT_PAYLOADS.imageDelete, decodeImageDelete],
  [EVENT_PAYLOADS.contentDelete, decodeContentDelete],
]);
