// What the registry serves: which registries are mirrored, whether tags are
// resolved, which registry a request without `ns` is for. Shared by the
// manifest and blob handlers.
import type { Logger } from 'pino';
import type { ContentSource } from '../content/source.ts';
import type { BufferPool } from './buffer-pool.ts';
import type { PullGate } from '../pullauth/gate.ts';
import type { SendfileAddon } from './sendfile-addon.ts';

export interface RoutePolicy {
  /** Registries whose content is served; empty = all. Lower case. */
  mirroredRegistries: ReadonlySet<string>;
  /** Whether tags are resolved (else only digests are served). */
  resolveTags: boolean;
  /** Registry assumed when the request has no `ns` query parameter. */
  defaultRegistry: string;
}

export interface RouteDeps {
  source: ContentSource;
  /** The source for requests from peers (marked): the node's own content only. Default: `source`. */
  localSource?: ContentSource;
  policy: RoutePolicy;
  log: Logger;
  /** The buffers of the file fast path, shared by all blob streams (default: a private ring per stream). */
  fileBuffers?: BufferPool;
  /** sendfile for local blobs on plain TCP sockets (send-sendfile.ts); undefined: they are copied through fileBuffers. */
  sendfile?: SendfileAddon;
  /** --verify-pull-access: pull access of the listed registries checked at the registry (pull-access.ts); undefined: none. */
  pullGate?: PullGate;
}

/** Repository a request is for, after validation. */
export interface RepositoryTarget {
  registry: string;
  name: string;
  /** The pull's access to the repository was verified at its registry (--verify-pull-access). */
  verified?: boolean;
}

export function createPolicy(mirroredRegistries: readonly string[], resolveTags: boolean, defaultRegistry: string): RoutePolicy {
  return {
    mirroredRegistries: new Set(mirroredRegistries.map((host) => host.toLowerCase())),
    resolveTags,
    defaultRegistry: defaultRegistry.toLowerCase(),
  };
}

export function isMirrored(policy: RoutePolicy, registry: string): boolean {
  return policy.mirroredRegistries.size === 0 || policy.mirroredRegistries.has(registry);
}
