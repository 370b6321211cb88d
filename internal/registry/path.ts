// Parses the request target of the distribution read API ourselves (the route
// is a wildcard, `<name>` has any number of components). Everything is
// validated against the spec's grammars before it is used anywhere: repository
// names (isValidName), tags (isValidTag), digests (parseDigest, supported
// algorithms only). The grammars admit no `.`/`..` component, no empty
// component and no leading `/`, so traversal attempts are NAME_INVALID.
import { parseDigest } from '../oci/digest.ts';
import { isValidName, isValidRegistryHost, isValidTag } from '../oci/reference.ts';
import { RegistryError } from './errors.ts';

export type RegistryPath =
  | { kind: 'base' }
  | { kind: 'manifest'; name: string; reference: string; byDigest: boolean }
  | { kind: 'blob'; name: string; digest: string }
  /** Not an endpoint of the read API (tags/list, _catalog, uploads, other paths). */
  | { kind: 'unknown' }
  | { kind: 'invalid'; error: RegistryError };

/** The path part of a raw request target, without the query string. */
export function pathOf(rawUrl: string): string {
  const q = rawUrl.indexOf('?');
  return q < 0 ? rawUrl : rawUrl.slice(0, q);
}

function decodeSegment(segment: string): string | undefined {
  if (!segment.includes('%')) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

function invalid(code: 'NAME_INVALID' | 'TAG_INVALID' | 'DIGEST_INVALID', detail: Record<string, string>): RegistryPath {
  return { kind: 'invalid', error: new RegistryError(code, detail) };
}

/** A reference (tag or digest) is taken for a digest when it has a `:`, encoded or not. */
function looksLikeDigestRef(segment: string): boolean {
  return segment.includes(':') || /%3a/i.test(segment);
}

export function parseRegistryPath(rawUrl: string): RegistryPath {
  const path = pathOf(rawUrl);
  if (path === '/v2' || path === '/v2/') return { kind: 'base' };
  if (!path.startsWith('/v2/')) return { kind: 'unknown' };
  // Segments are split before decoding: an encoded `/` (%2F) is data, and no
  // valid name component, tag or digest contains one.
  const raw = path.slice(4).split('/');
  if (raw.length < 3) return { kind: 'unknown' };
  const rawReference = raw.pop() ?? '';
  const endpoint = decodeSegment(raw.pop() ?? '');
  if (endpoint !== 'manifests' && endpoint !== 'blobs') return { kind: 'unknown' };
  // Bad percent-encoding (invalid hex, invalid UTF-8) is an error of the part it is in.
  const segments: string[] = [];
  for (const segment of raw) {
    const decoded = decodeSegment(segment);
    if (decoded === undefined) return invalid('NAME_INVALID', { reason: 'malformed percent-encoding', name: clip(segment) });
    segments.push(decoded);
  }
  const name = segments.join('/');
  if (segments.some((segment) => segment.includes('/')) || !isValidName(name)) return invalid('NAME_INVALID', { name: clip(name) });
  const looksDigest = endpoint === 'blobs' || looksLikeDigestRef(rawReference);
  const reference = decodeSegment(rawReference);
  if (reference === undefined) {
    const detail = { reason: 'malformed percent-encoding', [looksDigest ? 'digest' : 'tag']: clip(rawReference) };
    return invalid(looksDigest ? 'DIGEST_INVALID' : 'TAG_INVALID', detail);
  }
  if (looksDigest) {
    if (parseDigest(reference) === undefined) return invalid('DIGEST_INVALID', { digest: clip(reference) });
    return endpoint === 'blobs' ? { kind: 'blob', name, digest: reference } : { kind: 'manifest', name, reference, byDigest: true };
  }
  if (!isValidTag(reference)) return invalid('TAG_INVALID', { tag: clip(reference) });
  return { kind: 'manifest', name, reference, byDigest: false };
}

/**
 * The registry a request is for: the `ns` query parameter containerd adds when
 * it talks to a mirror, else the default. Undefined when `ns` is not a host.
 */
export function registryOf(rawUrl: string, defaultRegistry: string): string | undefined {
  const q = rawUrl.indexOf('?');
  if (q < 0) return defaultRegistry;
  const ns = new URLSearchParams(rawUrl.slice(q + 1)).get('ns');
  if (ns === null) return defaultRegistry;
  return isValidRegistryHost(ns) ? ns.toLowerCase() : undefined;
}

/** Keeps attacker-controlled strings short in error details and logs. */
export function clip(value: string, maxChars = 256): string {
  return value.length <= maxChars ? value : `${value.slice(0, maxChars)}...`;
}
