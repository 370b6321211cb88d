// Repository names, tags and image references as the OCI distribution spec
// and containerd use them.

/** The distribution spec's repository name grammar (path components). */
const NAME = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** A registry host as containerd passes it in `ns`: host[:port]. */
const HOST = /^[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]{1,5})?$/;

export const MAX_NAME_LENGTH = 255;

export function isValidName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && NAME.test(name);
}

export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

export function isValidRegistryHost(host: string): boolean {
  return host.length <= 255 && HOST.test(host);
}

/**
 * The image reference containerd stores for a tag of a repository on a registry:
 * `docker.io` + `library/nginx` + `1.27` -> `docker.io/library/nginx:1.27`.
 */
export function imageReference(registry: string, name: string, tag: string): string {
  return `${registry}/${name}:${tag}`;
}

export interface ParsedReference {
  registry: string;
  name: string;
  tag?: string;
  digest?: string;
}

/** Splits a fully qualified reference `host/name[:tag][@digest]` as containerd stores image names. */
export function parseImageReference(ref: string): ParsedReference | undefined {
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  const registry = rest.slice(0, slash);
  let name = rest.slice(slash + 1);
  let tag: string | undefined;
  const colon = name.lastIndexOf(':');
  if (colon >= 0) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
  }
  if (!isValidRegistryHost(registry) || !isValidName(name)) return undefined;
  if (tag !== undefined && !isValidTag(tag)) return undefined;
  const parsed: ParsedReference = { registry, name };
  if (tag !== undefined) parsed.tag = tag;
  if (digest !== undefined) parsed.digest = digest;
  return parsed;
}

/**
 * Completes a short image reference the way Docker and containerd's CRI do:
 * `nginx` -> `docker.io/library/nginx:latest`, `ghcr.io/a/b` -> `ghcr.io/a/b:latest`.
 * A reference with a digest keeps it. Returns undefined when it cannot be a reference.
 */
export function normalizeReference(input: string): string | undefined {
  let rest = input.trim();
  let digest = '';
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at);
    rest = rest.slice(0, at);
  }
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  const hasHost = first.includes('.') || first.includes(':') || first === 'localhost';
  let host = 'docker.io';
  let path = rest;
  if (hasHost) {
    host = first;
    path = rest.slice(slash + 1);
  }
  const lastSlash = path.lastIndexOf('/');
  const colon = path.lastIndexOf(':');
  const hasTag = colon > lastSlash;
  if (!hasTag && digest === '') path = `${path}:latest`;
  if (host === 'docker.io' && !path.includes('/')) path = `library/${path}`;
  const reference = `${host}/${path}${digest}`;
  return parseImageReference(reference) === undefined ? undefined : reference;
}
