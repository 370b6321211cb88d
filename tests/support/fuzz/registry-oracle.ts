// The oracle of the registry fuzz tests: what the app must answer to a GET or
// HEAD (or any other method) on a request target, derived from the
// distribution spec's grammars and the documented behaviour, written
// independently of path.ts (regular expressions over the raw target instead
// of its segment loop) so that the two check each other.
//
// Documented behaviour it encodes:
// - any method but GET and HEAD: 405 UNSUPPORTED;
// - a path Fastify's router cannot percent-decode: the path parser's error for
//   the part that is malformed, else 400 NAME_INVALID;
// - /v2 and /v2/: 200 `{}`; a target that is not a path (`*`, absolute-form): 404 NAME_UNKNOWN; /healthz and /readyz (GET): 200 `ok`;
// - anything that is not /v2/<name>/(blobs|manifests)/<reference>: 404 NAME_UNKNOWN;
// - a name segment that does not decode, holds a `/` once decoded, or a name
//   outside the grammar: 400 NAME_INVALID; a blob reference or a manifest
//   reference with a `:` (plain or encoded) that is not a supported digest:
//   400 DIGEST_INVALID; any other manifest reference outside the tag grammar: 400 TAG_INVALID;
// - an `ns` that is not a host: 400 NAME_INVALID; a registry not mirrored: 404;
// - then 200 with the content, or 404 BLOB_UNKNOWN / MANIFEST_UNKNOWN.
import type { OciErrorCode } from '../../../internal/registry/errors.ts';

const NAME = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST = /^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
const HOST = /^[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]{1,5})?$/;
const READ_API = /^\/v2\/([\s\S]*)\/([^/]*)\/([^/]*)$/;

export interface FixtureContent {
  bytes: Buffer;
  /** Stored with a manifest media type (served under /manifests/). */
  manifest: boolean;
}

export interface Fixture {
  blobs: ReadonlyMap<string, FixtureContent>;
  /** Full references (`docker.io/library/nginx:v1`) to digests. */
  tags: ReadonlyMap<string, string>;
  /** Lower case; empty: all. */
  mirrored: ReadonlySet<string>;
  defaultRegistry: string;
}

export type Expectation = ({ kind: 'content'; body: Buffer; digest?: string } | { kind: 'error'; status: number; code: OciErrorCode }) & {
  /** Other answers that are right too (where the router's handling of odd targets is not specified here). */
  alternatives?: Expectation[];
};

const error = (status: number, code: OciErrorCode): Expectation => ({ kind: 'error', status, code });

function decode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

function decodesAsUri(path: string): boolean {
  try {
    decodeURI(path);
    return true;
  } catch {
    return false;
  }
}

export type ReadRequest =
  { kind: 'unknown' } | { kind: 'invalid'; code: OciErrorCode } | { kind: 'blob' | 'manifest'; name: string; reference: string; byDigest: boolean };

/** What a path (no query) of the form /v2/<name>/<endpoint>/<reference> asks for, by the spec's grammars. */
export function readRequest(path: string): ReadRequest {
  const match = READ_API.exec(path);
  if (match === null) return { kind: 'unknown' };
  const [, rawName = '', rawEndpoint = '', rawReference = ''] = match;
  const endpoint = decode(rawEndpoint);
  if (endpoint !== 'blobs' && endpoint !== 'manifests') return { kind: 'unknown' };
  const nameParts = rawName.split('/').map(decode);
  if (nameParts.some((part) => part === undefined || part.includes('/'))) return { kind: 'invalid', code: 'NAME_INVALID' };
  const name = nameParts.join('/');
  if (name.length > 255 || !NAME.test(name)) return { kind: 'invalid', code: 'NAME_INVALID' };
  const byDigest = endpoint === 'blobs' || /:|%3a/i.test(rawReference);
  const reference = decode(rawReference);
  if (byDigest && (reference === undefined || !DIGEST.test(reference))) return { kind: 'invalid', code: 'DIGEST_INVALID' };
  if (!byDigest && (reference === undefined || !TAG.test(reference))) return { kind: 'invalid', code: 'TAG_INVALID' };
  return { kind: endpoint === 'blobs' ? 'blob' : 'manifest', name, reference: reference ?? '', byDigest };
}

function registryOf(query: string | undefined, fixture: Fixture): string | undefined {
  if (query === undefined) return fixture.defaultRegistry;
  const ns = new URLSearchParams(query).get('ns');
  if (ns === null) return fixture.defaultRegistry;
  return ns.length <= 255 && HOST.test(ns) ? ns.toLowerCase() : undefined;
}

export function expectFor(method: string, target: string, fixture: Fixture): Expectation {
  if (method !== 'GET' && method !== 'HEAD') return error(405, 'UNSUPPORTED');
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? undefined : target.slice(q + 1);
  const routerPath = path.split('#')[0] ?? '';
  if (routerPath.includes('%') && !decodesAsUri(routerPath)) {
    const parsed = readRequest(path);
    return parsed.kind === 'invalid' ? error(400, parsed.code) : error(400, 'NAME_INVALID');
  }
  // Asterisk-form and absolute-form targets (`*`, `http://host/v2/...`) are no path of this API; Fastify's
  // router may still route the latter by its path (`http://host/healthz`) or refuse it (`#` in it: bad URL).
  if (!target.startsWith('/')) {
    return { ...error(404, 'NAME_UNKNOWN'), alternatives: [error(400, 'NAME_INVALID'), { kind: 'content', body: Buffer.from('ok\n') }] };
  }
  if (path === '/v2' || path === '/v2/') return { kind: 'content', body: Buffer.from('{}') };
  const routed = decodesAsUri(routerPath) ? decodeURI(routerPath) : routerPath;
  if (routed === '/healthz' || routed === '/readyz') {
    return method === 'GET' ? { kind: 'content', body: Buffer.from('ok\n') } : error(404, 'NAME_UNKNOWN');
  }
  const parsed = readRequest(path);
  if (parsed.kind === 'unknown') return error(404, 'NAME_UNKNOWN');
  if (parsed.kind === 'invalid') return error(400, parsed.code);
  const registry = registryOf(query, fixture);
  if (registry === undefined) return error(400, 'NAME_INVALID');
  const missing = parsed.kind === 'blob' ? 'BLOB_UNKNOWN' : 'MANIFEST_UNKNOWN';
  if (fixture.mirrored.size > 0 && !fixture.mirrored.has(registry)) return error(404, missing);
  const digest = parsed.byDigest ? parsed.reference : fixture.tags.get(`${registry}/${parsed.name}:${parsed.reference}`);
  const content = digest === undefined ? undefined : fixture.blobs.get(digest);
  if (content === undefined || (parsed.kind === 'manifest' && !content.manifest)) return error(404, missing);
  return { kind: 'content', body: content.bytes, digest };
}
