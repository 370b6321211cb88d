// What `mirra configure` is told: the registries to mirror and the mirror
// targets (the node's own agent), each validated to a clear one-line reason.
import { isValidRegistryHost } from '../oci/reference.ts';
import { upstreamServer } from './hosts-toml.ts';

/** The certs.d entry containerd uses for every registry without its own directory. */
export const DEFAULT_HOST_DIR = '_default';

export interface MirroredRegistry {
  /** host[:port] as containerd names it, e.g. docker.io or 127.0.0.1:5000; also the certs.d directory name. */
  host: string;
  /** The fallback `server`: the registry itself (docker.io -> https://registry-1.docker.io). */
  server: string;
}

/**
 * `docker.io`, `https://ghcr.io` or `http://127.0.0.1:5000` (an http entry keeps
 * plain http for the server, for local registries).
 */
export function parseMirroredRegistry(raw: string): MirroredRegistry {
  const match = /^(?:(https?):\/\/)?([^/]+)\/?$/.exec(raw.trim());
  const host = match?.[2];
  if (match === null || host === undefined || !isValidRegistryHost(host)) {
    throw new Error(`${JSON.stringify(raw)} is not a registry (want host[:port], optionally with http:// or https://)`);
  }
  const scheme = match[1] === 'http' ? 'http' : 'https';
  return { host, server: upstreamServer(host, scheme) };
}

/** A mirror target: an http(s) base URL without path, query or credentials; returned without a trailing slash. */
export function parseMirrorTarget(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new Error(`${JSON.stringify(raw)} is not a URL (want e.g. http://127.0.0.1:30020)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`${JSON.stringify(raw)}: want an http:// or https:// URL`);
  if (url.username !== '' || url.password !== '') throw new Error(`${JSON.stringify(raw)}: credentials are not allowed in a mirror URL`);
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw new Error(`${JSON.stringify(raw)}: want a base URL without path, query or fragment`);
  }
  return `${url.protocol}//${url.host}`;
}
