// The agent's start-up check of containerd's own configuration. Two settings
// decide whether mirra can work on a node:
//  - discard_unpacked_layers must be false: when true, containerd deletes a
//    layer's compressed blob after unpacking it, so this node can never serve it
//    to peers;
//  - the CRI registry config_path must be set: without it containerd ignores
//    certs.d/<registry>/hosts.toml, so nothing is pulled through the agent;
//  - on containerd 2.1 and later, it must be one directory unless the CRI
//    pulls locally: 2.1+ pulls through its transfer service, which takes a
//    `:`-separated list (2.2's default) as one directory, so it finds no
//    hosts.toml. 1.x and 2.0 pull locally, and their resolver splits the list.
//    The version comes from containerd (version.ts); an unknown one is
//    taken as 2.1 or later, since that failure is silent.
// containerd's gRPC introspection does not carry the CRI plugin's config (its
// plugin entry exports only CRIVersion), so the config file is read instead:
// the node's /etc/containerd/config.toml mounted into the pod, with its
// `imports`. Config versions 1 and 2 (containerd 1.x) and 3 (containerd 2.x).
// Only the agent runs it (cmd/registry.ts), at start-up; `mirra configure`
// (internal/hostsconfig) writes hosts.toml files and reads no containerd config.
import { parse, type TomlTable } from 'smol-toml';
import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { isNotFound } from '../fs/not-found.ts';
import type { ContainerdVersion } from './version.ts';
import { errorMessage } from '../errors/message.ts';

interface Layout {
  /** Table path and label of the table that holds discard_unpacked_layers (and disable_snapshot_annotations). */
  discardTable: string[];
  /** Table path of the CRI registry table that holds config_path (and the legacy mirrors, configs, auths). */
  registryTable: string[];
  /** Table path of the CRI table that holds max_concurrent_downloads and image_pull_with_sync_fs. */
  criTable: string[];
}

const LAYOUTS: Record<number, Layout> = {
  1: { discardTable: ['plugins', 'cri', 'containerd'], registryTable: ['plugins', 'cri', 'registry'], criTable: ['plugins', 'cri'] },
  2: {
    discardTable: ['plugins', 'io.containerd.grpc.v1.cri', 'containerd'],
    registryTable: ['plugins', 'io.containerd.grpc.v1.cri', 'registry'],
    criTable: ['plugins', 'io.containerd.grpc.v1.cri'],
  },
  3: {
    discardTable: ['plugins', 'io.containerd.cri.v1.images'],
    registryTable: ['plugins', 'io.containerd.cri.v1.images', 'registry'],
    criTable: ['plugins', 'io.containerd.cri.v1.images'],
  },
};

/** containerd 2.1+'s CRI images table, where use_local_image_pull is (in every config version: containerd does not migrate it). */
const IMAGES_TABLE = ['plugins', 'io.containerd.cri.v1.images'];

const MAX_IMPORTS = 64;

interface LoadedFile {
  file: string;
  config: TomlTable;
  layout: Layout;
}

/** The table label as containerd's docs write it: [plugins."io.containerd.grpc.v1.cri".registry] */
function tableLabel(path: string[]): string {
  return `[${path.map((part) => (/^[A-Za-z0-9_-]+$/.test(part) ? part : JSON.stringify(part))).join('.')}]`;
}

function lookup(config: TomlTable, path: string[]): unknown {
  let node: unknown = config;
  for (const key of path) {
    if (typeof node !== 'object' || node === null || Array.isArray(node) || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** The value of the setting in the last file (main file, then its imports) that sets it: containerd merges imports over the main file. */
function setting(files: LoadedFile[], pick: (layout: Layout) => string[], key: string): { value: unknown; file: string; table: string } {
  let found = { value: undefined as unknown, file: files[0]?.file ?? '', table: tableLabel(pick(files[0]?.layout ?? LAYOUTS[2]!)) };
  for (const loaded of files) {
    const tablePath = pick(loaded.layout);
    const value = lookup(loaded.config, [...tablePath, key]);
    if (value !== undefined) found = { value, file: loaded.file, table: tableLabel(tablePath) };
  }
  return found;
}

function isNonEmptyTable(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length > 0;
}

/**
 * Whether containerd 2.1+ pulls for the CRI locally rather than through its
 * transfer service: use_local_image_pull = true, or a CRI setting the transfer
 * service does not support, which makes containerd fall back (on Linux, as of
 * 2.1 to 2.3: disable_snapshot_annotations = false, legacy registry mirrors,
 * configs or auths, max_concurrent_downloads other than 3,
 * image_pull_with_sync_fs = true; and discard_unpacked_layers = true, which
 * checkLoadedConfig rejects before asking this).
 */
function pullsLocally(files: LoadedFile[]): boolean {
  const value = (pick: (layout: Layout) => string[], key: string): unknown => setting(files, pick, key).value;
  if (value(() => IMAGES_TABLE, 'use_local_image_pull') === true) return true;
  if (value((layout) => layout.discardTable, 'disable_snapshot_annotations') === false) return true;
  // containerd merges tables of imports into the main file's, so one non-empty table anywhere counts.
  const legacy = ['mirrors', 'configs', 'auths'];
  if (files.some((loaded) => legacy.some((key) => isNonEmptyTable(lookup(loaded.config, [...loaded.layout.registryTable, key]))))) return true;
  const downloads = value((layout) => layout.criTable, 'max_concurrent_downloads');
  if (downloads !== undefined && downloads !== 3) return true;
  return value((layout) => layout.criTable, 'image_pull_with_sync_fs') === true;
}

/** A `:`-separated config_path on a containerd that pulls through its transfer service (2.1+, or unknown), as one line; else undefined. */
function transferServiceProblem(
  files: LoadedFile[],
  configPath: { value: string; file: string; table: string },
  containerd: ContainerdVersion,
): string | undefined {
  if (!configPath.value.includes(':')) return undefined;
  if (containerd.known && (containerd.major < 2 || (containerd.major === 2 && containerd.minor < 1))) return undefined;
  if (pullsLocally(files)) return undefined;
  const who = containerd.known
    ? `containerd ${containerd.text} pulls through its transfer service, which`
    : `containerd's version is unknown (${containerd.reason}), and 2.1 and later pull through the transfer service, which`;
  const one = configPath.value.split(':').find((part) => part !== '') ?? '/etc/containerd/certs.d';
  return (
    `${who} takes config_path as one directory: config_path = ${JSON.stringify(configPath.value)} in ${configPath.file} ${configPath.table} makes it ignore every hosts.toml; ` +
    `set config_path = ${JSON.stringify(one)}, or use_local_image_pull = true in ${tableLabel(IMAGES_TABLE)}, and restart containerd`
  );
}

/**
 * Checks already loaded config files (the main file first); returns the problem as one line, or undefined.
 * `containerd` is the version of the containerd that reads them; without it the version-dependent check is skipped.
 */
export function checkLoadedConfig(files: LoadedFile[], containerd?: ContainerdVersion): string | undefined {
  const discard = setting(files, (layout) => layout.discardTable, 'discard_unpacked_layers');
  if (discard.value !== undefined && typeof discard.value !== 'boolean') {
    return `containerd config has discard_unpacked_layers = ${JSON.stringify(discard.value)} in ${discard.file} ${discard.table}, not a boolean; set it to false and restart containerd`;
  }
  if (discard.value === true) {
    return `containerd discards unpacked layers (discard_unpacked_layers = true in ${discard.file} ${discard.table}); set it to false and restart containerd, or peers cannot serve this node's layers`;
  }
  const configPath = setting(files, (layout) => layout.registryTable, 'config_path');
  if (configPath.value !== undefined && typeof configPath.value !== 'string') {
    return `containerd config has config_path = ${JSON.stringify(configPath.value)} in ${configPath.file} ${configPath.table}, not a path; set config_path = "/etc/containerd/certs.d" and restart containerd`;
  }
  if (configPath.value === undefined || configPath.value === '') {
    const what = configPath.value === undefined ? 'config_path is not set' : 'config_path = ""';
    return `containerd has no registry config_path (${what} in ${configPath.file} ${configPath.table}); set config_path = "/etc/containerd/certs.d" there and restart containerd, or containerd ignores mirra's hosts.toml files`;
  }
  return containerd === undefined
    ? undefined
    : transferServiceProblem(files, { value: configPath.value, file: configPath.file, table: configPath.table }, containerd);
}

function firstLine(message: string): string {
  return (message.split('\n')[0] ?? message).trim();
}

async function loadFile(file: string, fallbackVersion: number | undefined): Promise<LoadedFile> {
  const text = await readFile(file, 'utf8').catch((err: unknown) => {
    if (isNotFound(err)) throw err;
    throw new Error(`cannot read containerd config ${file}: ${errorMessage(err)}`, { cause: err });
  });
  let config: TomlTable;
  try {
    config = parse(text);
  } catch (err) {
    throw new Error(`cannot parse containerd config ${file}: ${firstLine(errorMessage(err))}`, { cause: err });
  }
  const raw = config.version;
  const version = raw === undefined ? (fallbackVersion ?? 1) : typeof raw === 'number' ? raw : Number.NaN;
  const layout = LAYOUTS[version];
  if (layout === undefined) throw new Error(`containerd config ${file} has version = ${JSON.stringify(raw)}; mirra knows versions 1, 2 and 3`);
  return { file, config, layout };
}

/** Import paths, relative ones against the importing file's directory; a `*` or `?` in the last part is a glob. */
async function resolveImports(loaded: LoadedFile): Promise<string[]> {
  const imports = loaded.config.imports;
  if (imports === undefined) return [];
  if (!Array.isArray(imports) || !imports.every((item) => typeof item === 'string')) {
    throw new Error(`containerd config ${loaded.file} has imports that are not a list of paths`);
  }
  const paths: string[] = [];
  for (const raw of imports) {
    const path = isAbsolute(raw) ? raw : join(dirname(loaded.file), raw);
    const name = basename(path);
    if (!/[*?[]/.test(name)) {
      paths.push(path);
      continue;
    }
    const pattern = new RegExp(
      `^${name
        .replace(/[.+^${}()|\\]/g, '\\$&')
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '[^/]')}$`,
    );
    const entries = await readdir(dirname(path)).catch((err: unknown) => {
      if (isNotFound(err)) return [];
      throw err;
    });
    paths.push(
      ...entries
        .filter((entry) => pattern.test(entry))
        .sort()
        .map((entry) => join(dirname(path), entry)),
    );
  }
  return paths;
}

/**
 * Reads containerd's config file (and its imports) and checks the settings
 * mirra depends on. Returns one line naming the setting, the file and the fix,
 * or undefined when containerd is configured right. `containerd` is the
 * version of the containerd that reads the file (an unknown one counts as 2.1
 * or later); without it, the check that depends on the version is skipped.
 */
export async function checkContainerdConfig(configPath: string, containerd?: ContainerdVersion): Promise<string | undefined> {
  const files: LoadedFile[] = [];
  try {
    const main = await loadFile(configPath, undefined);
    files.push(main);
    const mainVersion = typeof main.config.version === 'number' ? main.config.version : 1;
    const queue = await resolveImports(main);
    const seen = new Set([configPath]);
    while (queue.length > 0 && seen.size <= MAX_IMPORTS) {
      const next = queue.shift()!;
      if (seen.has(next)) continue;
      seen.add(next);
      const loaded = await loadFile(next, mainVersion).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
        throw new Error(
          `containerd config ${configPath} imports ${next}, which is not readable here: mount it at that path too, or turn this check off with --preflight=false`,
        );
      });
      files.push(loaded);
      queue.push(...(await resolveImports(loaded)));
    }
  } catch (err) {
    if (files.length === 0 && isNotFound(err)) {
      return `containerd config ${configPath} not found: mount the node's containerd config.toml there (or point --containerd-config-path at it), or turn this check off with --preflight=false`;
    }
    return firstLine(errorMessage(err));
  }
  return checkLoadedConfig(files, containerd);
}
