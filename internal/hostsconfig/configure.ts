// `mirra configure`: one <certs.d>/<registry>/hosts.toml per mirrored registry
// with the mirror targets (the node's own agent) first and the registry itself
// as `server`, the fallback. No registries: one `_default/hosts.toml`, which
// containerd uses for every registry without its own directory (seen with
// containerd 1.6.20: a pull from any host asks the _default mirrors first).
// This folder, internal/hostsconfig, is those files and nothing else: writing
// (here), removing (cleanup.ts), their format (hosts-toml.ts); the commands'
// flags are internal/config/configure-flags.ts.
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isNotFound } from '../fs/not-found.ts';
import { removeManaged, type CleanupAction } from './cleanup.ts';
import { BACKUP_FILE, HOSTS_FILE, listDirs, managedHeader, managedInfo, readIfExists, writeAtomic } from './files.ts';
import { prependToExisting, renderHostsToml, type Capability, type MirrorHost } from './hosts-toml.ts';
import { DEFAULT_HOST_DIR, type MirroredRegistry } from './registries.ts';

export interface ConfigureOptions {
  /** containerd's registry config_path, e.g. /etc/containerd/certs.d */
  certsDir: string;
  /** Empty: every registry, through `_default/hosts.toml`. */
  registries: MirroredRegistry[];
  /** Base URLs of the mirrors, tried in this order (the node's own agent). */
  mirrorTargets: string[];
  /** true: capabilities pull + resolve (tags through the mirror); false: pull only. */
  resolveTags: boolean;
  /** true: keep the existing file's hosts after ours; false: replace it (kept as hosts.toml.mirra-backup). */
  prependExisting: boolean;
}

export interface WrittenFile {
  /** The certs.d directory name: a registry host or `_default`. */
  dir: string;
  path: string;
  /** Set when an existing file of someone else was saved before it was replaced. */
  backup?: string;
  createdDir: boolean;
  /** The existing file's hosts were kept after ours. */
  prepended: boolean;
}

export interface ConfigureResult {
  written: WrittenFile[];
  /** Files of an earlier run for registries no longer mirrored, removed or restored. */
  stale: CleanupAction[];
}

export async function writeMirrorConfiguration(options: ConfigureOptions): Promise<ConfigureResult> {
  if (options.mirrorTargets.length === 0) throw new Error('no mirror targets');
  const capabilities: Capability[] = options.resolveTags ? ['pull', 'resolve'] : ['pull'];
  const mirrors: MirrorHost[] = options.mirrorTargets.map((url) => ({ url, capabilities }));
  const entries: HostEntry[] =
    options.registries.length === 0
      ? [{ dir: DEFAULT_HOST_DIR, server: undefined }]
      : options.registries.map((registry) => ({ dir: registry.host, server: registry.server }));
  await mkdir(options.certsDir, { recursive: true });
  const written: WrittenFile[] = [];
  const plan: WritePlan = { certsDir: options.certsDir, mirrors, prependExisting: options.prependExisting };
  for (const entry of entries) written.push(await writeOne(plan, entry));
  const wanted = new Set(entries.map((entry) => entry.dir));
  const stale: CleanupAction[] = [];
  for (const dir of await listDirs(options.certsDir)) {
    if (!wanted.has(dir)) stale.push(...(await removeManaged(join(options.certsDir, dir))));
  }
  return { written, stale };
}

/** What every hosts.toml of one run shares. */
interface WritePlan {
  readonly certsDir: string;
  readonly mirrors: MirrorHost[];
  readonly prependExisting: boolean;
}

/** One hosts.toml to write: its certs.d directory name and the registry as `server` (undefined for `_default`). */
interface HostEntry {
  readonly dir: string;
  readonly server: string | undefined;
}

async function writeOne(plan: WritePlan, entry: HostEntry): Promise<WrittenFile> {
  const { certsDir, mirrors, prependExisting } = plan;
  const { dir, server } = entry;
  const dirPath = join(certsDir, dir);
  const path = join(dirPath, HOSTS_FILE);
  const backupPath = join(dirPath, BACKUP_FILE);
  const createdDir = !(await isDirectory(dirPath));
  if (createdDir) await mkdir(dirPath, { recursive: true });

  const existing = await readIfExists(path);
  const info = existing === undefined ? undefined : managedInfo(existing);
  // The other party's file: the existing one, or the backup an earlier run made.
  let original: string | undefined;
  let backup: string | undefined;
  let keepCreatedDir = createdDir;
  if (existing !== undefined && info?.managed === false) {
    original = existing;
    await writeAtomic(backupPath, existing);
    backup = backupPath;
  } else if (info?.managed === true) {
    keepCreatedDir = info.createdDir;
    original = await readIfExists(backupPath);
    if (original !== undefined) backup = backupPath;
  }
  const header = managedHeader(keepCreatedDir);
  const prepended = prependExisting && original !== undefined;
  const text = prepended && original !== undefined ? prependToExisting(original, { server, mirrors, header }) : renderHostsToml({ server, mirrors, header });
  await writeAtomic(path, text);
  return { dir, path, backup, createdDir: keepCreatedDir, prepended };
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    const info = await stat(path);
    if (!info.isDirectory()) throw new Error(`${path} exists and is not a directory`);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}
