// `mirra cleanup`: undoes `mirra configure` in a certs.d directory. Only files
// that start with the mirra marker are removed; a file mirra replaced comes
// back from hosts.toml.mirra-backup; a directory is removed only when mirra
// created it and it is empty. Nothing else is touched.
import { rename, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BACKUP_FILE, HOSTS_FILE, listDirs, managedInfo, readIfExists } from './files.ts';

export interface CleanupAction {
  /** removed: our hosts.toml deleted; restored: the backup put back; removed-dir: the directory we created; kept: left alone. */
  action: 'removed' | 'restored' | 'removed-dir' | 'kept';
  path: string;
  reason?: string;
}

/** Cleans one certs.d/<registry> directory. */
export async function removeManaged(dirPath: string): Promise<CleanupAction[]> {
  const path = join(dirPath, HOSTS_FILE);
  const backupPath = join(dirPath, BACKUP_FILE);
  const current = await readIfExists(path);
  const hasBackup = (await readIfExists(backupPath)) !== undefined;
  const info = current === undefined ? undefined : managedInfo(current);

  if (info !== undefined && !info.managed) {
    if (!hasBackup) return [];
    return [{ action: 'kept', path: backupPath, reason: `${HOSTS_FILE} beside it was not written by mirra; left both alone` }];
  }
  if (hasBackup) {
    // Ours (or gone): the other party's file comes back, atomically.
    await rename(backupPath, path);
    return [{ action: 'restored', path }];
  }
  if (info === undefined) return [];
  await rm(path, { force: true });
  const actions: CleanupAction[] = [{ action: 'removed', path }];
  if (info.createdDir) {
    try {
      await rmdir(dirPath);
      actions.push({ action: 'removed-dir', path: dirPath });
    } catch (err) {
      const code = typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOENT') throw err;
      actions.push({ action: 'kept', path: dirPath, reason: 'directory mirra created now holds other files' });
    }
  }
  return actions;
}

/** Cleans every directory of a certs.d; a missing certs.d is nothing to do. */
export async function removeMirrorConfiguration(certsDir: string): Promise<CleanupAction[]> {
  const actions: CleanupAction[] = [];
  for (const dir of await listDirs(certsDir)) actions.push(...(await removeManaged(join(certsDir, dir))));
  return actions;
}
