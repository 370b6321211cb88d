// The files `mirra configure` writes and `mirra cleanup` removes, and how it
// recognises them: every hosts.toml it writes starts with MANAGED_MARKER; an
// existing file it replaces is kept beside it as hosts.toml.mirra-backup.
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isNotFound } from '../fs/not-found.ts';

export const HOSTS_FILE = 'hosts.toml';
export const BACKUP_FILE = 'hosts.toml.mirra-backup';
export const MANAGED_MARKER = 'managed by mirra';
export const CREATED_DIR_NOTE = 'mirra created this directory';

/** The comment lines (without "# ") at the top of every file mirra writes. */
export function managedHeader(createdDir: boolean): string[] {
  const header = [`${MANAGED_MARKER}: "mirra cleanup" removes this file and restores ${BACKUP_FILE} if there is one`];
  if (createdDir) header.push(CREATED_DIR_NOTE);
  return header;
}

export interface ManagedInfo {
  managed: boolean;
  createdDir: boolean;
}

/** Whether a hosts.toml was written by mirra: its first line is `# managed by mirra...`. */
export function managedInfo(text: string): ManagedInfo {
  const lines = text.split('\n', 3);
  const managed = lines[0]?.startsWith(`# ${MANAGED_MARKER}`) === true;
  return { managed, createdDir: managed && lines.slice(1).some((line) => line.trim() === `# ${CREATED_DIR_NOTE}`) };
}

/** The file's text, or undefined when it does not exist. */
export async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Writes through a temp file in the same directory and a rename, so readers never see half a file. */
export async function writeAtomic(path: string, text: string): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(temp, text, { mode: 0o644, flag: 'wx' });
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/** The sub-directories of a certs.d, sorted; none when it does not exist. */
export async function listDirs(certsDir: string): Promise<string[]> {
  try {
    const entries = await readdir(certsDir, { withFileTypes: true });
    return entries
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name)
      .sort();
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
}
