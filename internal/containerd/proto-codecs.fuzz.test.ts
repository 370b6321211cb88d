// Property test of the generated protobuf codecs (proto-codecs.ts over
// protowire.ts) against protobufjs, loaded here from the same .proto files:
// the independent oracle, and what the agent ran before (through
// @grpc/proto-loader, whose decoded shape mirra's validators expect).
//
// - decoders: random messages of every decoded type, encoded by protobufjs
//   with unknown fields of every wire type (groups too) at every level, decode
//   to exactly what proto-loader decodes;
// - encoders: the request of every rpc, encoded here and by protobufjs,
//   decodes to the same message; so does every field kind written with
//   protowire's writers;
// - garbage (random bytes, and valid messages truncated, flipped, spliced):
//   a decoder returns or throws ProtoDecodeError (one line), and what it
//   returns is a message proto-loader decodes the same after protobufjs
//   encoded it again. protobufjs accepts some malformed input mirra refuses
//   (a truncated string, field number 0, an overlong varint, a known field
//   sent with another wire type, which protobufjs reads as declared and
//   protowire skips as unknown, as the protobuf spec says), so on garbage the
//   two need not agree on accepting.
// Settings: tests/support/fuzz.ts.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadSync, type MessageTypeDefinition } from '@grpc/proto-loader';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { checkProperty } from '../../tests/support/fuzz.ts';
import * as codecs from './proto-codecs.ts';
import {
  encodeMessage,
  ProtoDecodeError,
  writeBytes,
  writeInt32,
  writeInt64,
  writeMessage,
  writeRepeatedMessage,
  writeRepeatedString,
  writeString,
  writeStringMap,
  type ProtoWriter,
} from './protowire.ts';

const PROTO_DIR = fileURLToPath(new URL('./proto/', import.meta.url));
const FILES = readdirSync(PROTO_DIR)
  .filter((f) => f.endsWith('.proto'))
  .map((f) => join(PROTO_DIR, f));
const root = new protobuf.Root().loadSync(FILES, { keepCase: false });
root.resolveAll();
const loaded = loadSync(FILES, { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_DIR] });

type Value = Record<string, unknown>;
type Gen = fc.GeneratorValue;

function allTypes(ns: protobuf.NamespaceBase): protobuf.Type[] {
  return ns.nestedArray.flatMap((n) => (n instanceof protobuf.Type ? [n, ...allTypes(n)] : n instanceof protobuf.Namespace ? allTypes(n) : []));
}
const TYPES = new Map(allTypes(root).map((t) => [t.name, t]));

function codec(prefix: 'decode' | 'encode', name: string): ((input: never) => unknown) | undefined {
  const fn = (codecs as Record<string, unknown>)[`${prefix}${name}`];
  return typeof fn === 'function' ? (fn as (input: never) => unknown) : undefined;
}
const decodeWith = (name: string, bytes: Buffer): unknown => codec('decode', name)!(bytes as never);
const encodeWith = (name: string, value: Value): Buffer => codec('encode', name)!(value as never) as Buffer;

const DECODED = [...TYPES.keys()].filter((name) => codec('decode', name) !== undefined).sort();
const ENCODED = [...TYPES.keys()].filter((name) => codec('encode', name) !== undefined).sort();

function type(name: string): protobuf.Type {
  const t = TYPES.get(name);
  assert.ok(t !== undefined, name);
  return t;
}

/** What proto-loader decodes (the agent's decoder before proto-codecs.ts). */
function oracleDecode(name: string, bytes: Uint8Array): unknown {
  const def = loaded[type(name).fullName.slice(1)] as MessageTypeDefinition<object, unknown> | undefined;
  assert.ok(def !== undefined && 'deserialize' in def, name);
  return def.deserialize(Buffer.from(bytes));
}

function protobufjsEncode(name: string, value: Value): Uint8Array {
  const t = type(name);
  return t.encode(t.fromObject(value)).finish();
}

const text = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: 'grapheme', maxLength: 8 }), fc.constantFrom('', `sha256:${'a'.repeat(64)}`));
const int64 = fc.oneof(fc.integer(), fc.maxSafeInteger(), fc.constantFrom(0, -1, 2 ** 31, 2 ** 32, 2 ** 53 - 1, -(2 ** 53 - 1)));
const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
const bytes = fc.uint8Array({ maxLength: 24 }).map((a) => Buffer.from(a));

function scalar(kind: string): fc.Arbitrary<unknown> {
  const arbs: Record<string, fc.Arbitrary<unknown>> = { string: text, int64, int32, bytes };
  const arb = arbs[kind];
  assert.ok(arb !== undefined, `no arbitrary for ${kind}: extend this test with protowire.ts`);
  return arb;
}

const messageArbs = new Map<string, fc.Arbitrary<Value>>();
/** A message of the type as protobufjs's fromObject takes it: any field may be absent. */
function message(t: protobuf.Type): fc.Arbitrary<Value> {
  const cached = messageArbs.get(t.fullName);
  if (cached !== undefined) return cached;
  const fields: Record<string, fc.Arbitrary<unknown>> = {};
  for (const field of t.fieldsArray) {
    if (field instanceof protobuf.MapField) fields[field.name] = fc.dictionary(text, text, { maxKeys: 3, noNullPrototype: true });
    else {
      const one = field.resolvedType instanceof protobuf.Type ? message(field.resolvedType) : scalar(field.type);
      fields[field.name] = field.repeated ? fc.array(one, { maxLength: 3 }) : one;
    }
  }
  const arb = fc.record(fields, { requiredKeys: [] });
  messageArbs.set(t.fullName, arb);
  return arb;
}

/** 0-2 fields the type does not have, of every wire type. */
function writeUnknown(w: protobuf.Writer, t: protobuf.Type, g: Gen): void {
  const count = g(fc.integer, { min: 0, max: 2 });
  for (let i = 0; i < count; i++) {
    const id = g(() => fc.integer({ min: 1, max: 2 ** 29 - 1 }).filter((n) => t.fieldsById[n] === undefined));
    const wire = g(() => fc.constantFrom(0, 1, 2, 3, 5));
    w.uint32(((id << 3) | wire) >>> 0);
    if (wire === 0) w.int64(g(fc.maxSafeInteger));
    else if (wire === 1) w.fixed64(g(fc.maxSafeNat));
    else if (wire === 2) w.bytes(g(fc.uint8Array, { maxLength: 12 }));
    else if (wire === 5) w.fixed32(g(fc.nat));
    else {
      // A group: a varint inside, then its end.
      w.uint32(((g(fc.integer, { min: 1, max: 99 }) << 3) | 0) >>> 0).uint64(g(fc.nat));
      w.uint32(((id << 3) | 4) >>> 0);
    }
  }
}

function writeKnown(w: protobuf.Writer, field: protobuf.Field, value: unknown, g: Gen): void {
  if (field.resolvedType instanceof protobuf.Type) {
    w.uint32(((field.id << 3) | 2) >>> 0).fork();
    writeFields(w, field.resolvedType, value as Value, g);
    w.ldelim();
    return;
  }
  const wire = field.type === 'int64' || field.type === 'int32' ? 0 : 2;
  w.uint32(((field.id << 3) | wire) >>> 0);
  if (field.type === 'string') w.string(value as string);
  else if (field.type === 'bytes') w.bytes(value as Buffer);
  else if (field.type === 'int64') w.int64(value as number);
  else w.int32(value as number);
}

/** The message as protobufjs's writer puts it, with unknown fields between the known ones. */
function writeFields(w: protobuf.Writer, t: protobuf.Type, value: Value, g: Gen): void {
  writeUnknown(w, t, g);
  for (const field of t.fieldsArray) {
    const v = value[field.name];
    if (v === undefined) continue;
    if (field instanceof protobuf.MapField) {
      for (const [key, entry] of Object.entries(v as Record<string, string>)) {
        w.uint32(((field.id << 3) | 2) >>> 0)
          .fork()
          .uint32(10)
          .string(key)
          .uint32(18)
          .string(entry)
          .ldelim();
      }
    } else if (field.repeated) for (const item of v as unknown[]) writeKnown(w, field, item, g);
    else writeKnown(w, field, v, g);
    writeUnknown(w, t, g);
  }
}

function encodedWithUnknown(name: string, g: Gen): Buffer {
  const w = protobuf.Writer.create();
  writeFields(
    w,
    type(name),
    g(() => message(type(name))),
    g,
  );
  return Buffer.from(w.finish());
}

/** A writer of the type from protowire's functions, every field kind. */
function protowireWriter(t: protobuf.Type): (w: ProtoWriter, value: Value) => void {
  return (w, value) => {
    for (const field of t.fieldsArray) {
      const v = value[field.name];
      if (field instanceof protobuf.MapField) writeStringMap(w, field.id, v as Record<string, string> | undefined);
      else if (field.resolvedType instanceof protobuf.Type) {
        const write = protowireWriter(field.resolvedType);
        if (field.repeated) writeRepeatedMessage(w, field.id, v as Value[] | undefined, write);
        else writeMessage(w, field.id, v as Value | undefined, write);
      } else if (field.repeated) writeRepeatedString(w, field.id, v as string[] | undefined);
      else if (field.type === 'string') writeString(w, field.id, v as string | undefined);
      else if (field.type === 'bytes') writeBytes(w, field.id, v as Buffer | undefined);
      else if (field.type === 'int64') writeInt64(w, field.id, v as number | undefined);
      else writeInt32(w, field.id, v as number | undefined);
    }
  };
}

test('every response, payload and request type of the rpcs has its codec', () => {
  assert.deepEqual(DECODED, [
    'Any',
    'ContentDelete',
    'Descriptor',
    'Empty',
    'Envelope',
    'GetImageResponse',
    'Image',
    'ImageCreate',
    'ImageDelete',
    'ImageUpdate',
    'Info',
    'InfoResponse',
    'ListContentResponse',
    'ListImagesResponse',
    'ListStatusesResponse',
    'ReadContentResponse',
    'Status',
    'Timestamp',
    'VersionResponse',
  ]);
  assert.deepEqual(ENCODED, [
    'AbortRequest',
    'Empty',
    'GetImageRequest',
    'InfoRequest',
    'ListContentRequest',
    'ListImagesRequest',
    'ListStatusesRequest',
    'ReadContentRequest',
    'SubscribeRequest',
  ]);
});

test('decoders give what proto-loader gave, unknown fields of every wire type skipped', async (t) => {
  await checkProperty(
    t,
    fc.property(fc.constantFrom(...DECODED), fc.gen(), (name, g) => {
      const input = encodedWithUnknown(name, g);
      assert.deepStrictEqual(decodeWith(name, input), oracleDecode(name, input));
    }),
    500,
  );
});

test('encoders and protowire writers encode what protobufjs encodes', async (t) => {
  await checkProperty(
    t,
    fc.property(fc.constantFrom(...new Set([...ENCODED, ...DECODED])), fc.gen(), (name, g) => {
      const value = g(() => message(type(name)));
      const expected = oracleDecode(name, protobufjsEncode(name, value));
      if (ENCODED.includes(name)) assert.deepStrictEqual(oracleDecode(name, encodeWith(name, value)), expected, 'generated encoder');
      assert.deepStrictEqual(oracleDecode(name, encodeMessage(value, protowireWriter(type(name)))), expected, 'protowire writers');
    }),
    500,
  );
});

/** A valid message broken: truncated, a byte changed, bytes spliced in. */
function mutated(valid: Buffer, g: Gen): Buffer {
  const at = g(fc.integer, { min: 0, max: valid.length });
  const kind = g(() => fc.constantFrom('truncate', 'flip', 'splice'));
  if (kind === 'truncate') return valid.subarray(0, at);
  if (kind === 'flip' && at < valid.length) {
    const copy = Buffer.from(valid);
    copy[at] = g(fc.integer, { min: 0, max: 255 });
    return copy;
  }
  return Buffer.concat([valid.subarray(0, at), Buffer.from(g(fc.uint8Array, { minLength: 1, maxLength: 12 })), valid.subarray(at)]);
}

test('on garbage a decoder returns a message or throws ProtoDecodeError, one line', async (t) => {
  let accepted = 0;
  await checkProperty(
    t,
    fc.property(fc.constantFrom(...DECODED), fc.gen(), (name, g) => {
      const input = g(fc.boolean) ? Buffer.from(g(fc.uint8Array, { maxLength: 48 })) : mutated(encodedWithUnknown(name, g), g);
      let decoded: unknown;
      try {
        decoded = decodeWith(name, input);
      } catch (err) {
        assert.ok(err instanceof ProtoDecodeError, `not a ProtoDecodeError: ${String(err)}`);
        assert.match(err.message, new RegExp(`^${type(name).fullName.slice(1).replace(/\./g, '\\.')}: [^\\n]+$`));
        return;
      }
      accepted++;
      assert.deepStrictEqual(oracleDecode(name, protobufjsEncode(name, decoded as Value)), decoded);
    }),
    1000,
  );
  t.diagnostic(`${accepted} inputs accepted`);
});
