// The app the registry fuzz tests run against (an in-memory store with a few
// real blobs, a manifest and two tags) and the check of one answer against the
// oracle (registry-oracle.ts).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { MediaType } from '../../../internal/oci/mediatype.ts';
import type { KnownContent } from './registry-arbitraries.ts';
import type { Expectation, Fixture, FixtureContent } from './registry-oracle.ts';
import { createTestApp, sampleManifest, type CapturedLog } from '../registry/testkit.ts';

export interface FuzzApp {
  app: FastifyInstance;
  fixture: Fixture;
  known: KnownContent;
  log: CapturedLog;
  /** Digest of the largest blob (for Range tests) and its bytes. */
  layer: { digest: string; bytes: Buffer };
}

export function createFuzzApp(): FuzzApp {
  const { app, store, log } = createTestApp({ mirroredRegistries: ['docker.io', 'ghcr.io'], defaultRegistry: 'docker.io' });
  const blobs = new Map<string, FixtureContent>();
  const add = (bytes: Buffer, mediaType: string | undefined, manifest: boolean): string => {
    const digest = store.put(bytes, mediaType);
    blobs.set(digest, { bytes, manifest });
    return digest;
  };
  const layerBytes = randomBytes(3000);
  const layer = add(layerBytes, MediaType.ociLayerGzip, false);
  add(Buffer.from('{"architecture":"amd64","os":"linux"}'), MediaType.ociConfig, false);
  add(Buffer.alloc(0), MediaType.ociLayer, false);
  add(randomBytes(100), undefined, false);
  const manifest = add(Buffer.from(sampleManifest(2)), MediaType.ociManifest, true);
  const tags = new Map<string, string>([
    ['docker.io/library/nginx:v1', manifest],
    ['ghcr.io/team/app:1.0-rc_1', manifest],
  ]);
  for (const [reference, digest] of tags) store.tag(reference, digest);
  return {
    app,
    log,
    fixture: { blobs, tags, mirrored: new Set(['docker.io', 'ghcr.io']), defaultRegistry: 'docker.io' },
    known: {
      digests: [...blobs.keys()],
      tags: [
        ['library/nginx', 'v1'],
        ['team/app', '1.0-rc_1'],
      ],
    },
    layer: { digest: layer, bytes: layerBytes },
  };
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: Buffer;
}

function header(answer: Answer, name: string): string | undefined {
  const value = answer.headers[name];
  return value === undefined ? undefined : String(value);
}

/** The code of an OCI error body (`{"errors":[{"code","message","detail"}]}`); fails on anything else. */
export function ociErrorCode(body: Buffer, context: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    assert.fail(`not a JSON body (${context}): ${JSON.stringify(body.toString('latin1').slice(0, 200))}`);
  }
  assert.ok(typeof parsed === 'object' && parsed !== null && 'errors' in parsed && Array.isArray(parsed.errors), context);
  const first: unknown = parsed.errors[0];
  assert.ok(typeof first === 'object' && first !== null && 'code' in first && 'message' in first && 'detail' in first, context);
  assert.equal(typeof first.code, 'string', context);
  return String(first.code);
}

/** Checks one answer against the oracle's expectation (or one of its alternatives). */
export function assertAnswer(answer: Answer, expected: Expectation, method: string, context: string): void {
  try {
    assertOneAnswer(answer, expected, method, context);
  } catch (err) {
    for (const alternative of expected.alternatives ?? []) {
      try {
        assertOneAnswer(answer, alternative, method, context);
        return;
      } catch {
        // try the next one
      }
    }
    throw err;
  }
}

function assertOneAnswer(answer: Answer, expected: Expectation, method: string, context: string): void {
  assert.ok(answer.status < 500, `${answer.status} (${context})`);
  if (expected.kind === 'content') {
    assert.equal(answer.status, 200, `${context}: ${answer.body.toString('latin1').slice(0, 200)}`);
    if (method === 'HEAD') assert.equal(answer.body.length, 0, context);
    else assert.ok(answer.body.equals(expected.body), `${context}: body differs`);
    if (expected.digest !== undefined) assert.equal(header(answer, 'docker-content-digest'), expected.digest, context);
    return;
  }
  assert.equal(answer.status, expected.status, `${context}: ${answer.body.toString('latin1').slice(0, 300)}`);
  assert.equal(header(answer, 'docker-distribution-api-version'), 'registry/2.0', context);
  if (method === 'HEAD') {
    assert.equal(answer.body.length, 0, context);
    return;
  }
  assert.match(header(answer, 'content-type') ?? '', /^application\/json/, context);
  assert.equal(ociErrorCode(answer.body, context), expected.code, context);
  if (expected.status === 405) assert.equal(header(answer, 'allow'), 'GET, HEAD', context);
}

/** The target light-my-request (app.inject) really sends: WHATWG URL parsing normalises it; undefined if it cannot. */
export function injectedTarget(target: string): string | undefined {
  try {
    const url = new URL(target.startsWith('//') ? `http://localhost${target}` : target, 'http://localhost');
    return url.pathname + url.search;
  } catch {
    return undefined;
  }
}
