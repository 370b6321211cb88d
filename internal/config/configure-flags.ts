// The flags of `mirra configure` and `mirra cleanup`, which write and remove
// containerd's mirror configuration (certs.d/<registry>/hosts.toml) on a node;
// the writing and removing is internal/hostsconfig's.
import { parseMirroredRegistry, parseMirrorTarget, type MirroredRegistry } from '../hostsconfig/registries.ts';
import { parseBoolean, parseList, parseNonEmpty, type FlagSpec } from './flags.ts';

function flag<T>(spec: FlagSpec<T>): FlagSpec<T> {
  return spec;
}

const certsDirFlag = flag({
  name: 'containerd-registry-config-path',
  env: 'MIRRA_CONTAINERD_REGISTRY_CONFIG_PATH',
  description: "containerd's registry config_path: one <registry>/hosts.toml per mirrored registry goes here",
  defaultValue: '/etc/containerd/certs.d',
  parse: parseNonEmpty,
});

export const configureFlags = {
  certsDir: certsDirFlag,
  mirroredRegistries: flag<MirroredRegistry[]>({
    name: 'mirrored-registries',
    env: 'MIRRA_MIRRORED_REGISTRIES',
    description:
      'comma-separated registries to pull through the mirror (docker.io, https://ghcr.io, http://host:port for plain http); empty writes _default/hosts.toml, used for every registry without its own directory',
    defaultValue: [],
    defaultLabel: '(all, as _default)',
    parse: (raw) => {
      const registries = parseList(raw).map(parseMirroredRegistry);
      const hosts = new Set<string>();
      for (const registry of registries) {
        if (hosts.has(registry.host)) throw new Error(`${registry.host} is listed twice`);
        hosts.add(registry.host);
      }
      return registries;
    },
  }),
  mirrorTargets: flag<string[]>({
    name: 'mirror-targets',
    env: 'MIRRA_MIRROR_TARGETS',
    description: "comma-separated mirror URLs tried in order before the registry: this node's agent, e.g. http://127.0.0.1:30020 (required)",
    defaultValue: [],
    defaultLabel: '(none: required)',
    parse: (raw) => {
      const targets = parseList(raw).map(parseMirrorTarget);
      if (targets.length === 0) throw new Error('want at least one URL');
      return targets;
    },
  }),
  resolveTags: flag({
    name: 'resolve-tags',
    env: 'MIRRA_RESOLVE_TAGS',
    description: 'let containerd resolve tags through the mirror (capabilities pull and resolve); false: pull by digest only',
    defaultValue: true,
    boolean: true,
    parse: parseBoolean,
  }),
  prependExisting: flag({
    name: 'prepend-existing',
    env: 'MIRRA_PREPEND_EXISTING',
    description: "keep an existing hosts.toml's hosts after the mirror targets; false replaces it (saved as hosts.toml.mirra-backup)",
    defaultValue: false,
    boolean: true,
    parse: parseBoolean,
  }),
};

export const cleanupFlags = {
  certsDir: certsDirFlag,
};
