// `node hack/build-native.ts [outDir]`: compiles native/sendfile.c into
// <outDir>/mirra-sendfile.node (default build/native), the agent's sendfile
// for local blobs (internal/registry/sendfile-addon.ts says how it is found).
// Needs a C compiler (`cc`; hack/setup.sh installs gcc when missing) and the
// Node-API headers (the node-api-headers dev dependency): no node-gyp, no
// Python, no download of Node's headers; the result loads in any Node with
// Node-API 8 on the same libc and architecture.
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SENDFILE_ADDON_FILE } from '../internal/registry/sendfile-addon.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
/** Where hack/setup.sh builds it for the agents the tests run from the sources. */
export const SOURCES_ADDON_DIR = join(ROOT, 'build/native');

export async function buildNative(outDir: string): Promise<string> {
  await mkdir(outDir, { recursive: true });
  const out = join(outDir, SENDFILE_ADDON_FILE);
  const args = [
    '-O2',
    '-std=c11',
    '-D_GNU_SOURCE',
    '-Wall',
    '-Wextra',
    '-Werror',
    '-shared',
    '-fPIC',
    '-fvisibility=hidden',
    '-I',
    join(ROOT, 'node_modules/node-api-headers/include'),
    '-o',
    out,
    join(ROOT, 'native/sendfile.c'),
  ];
  try {
    await promisify(execFile)(process.env.CC ?? 'cc', args);
  } catch (err) {
    const stderr = err instanceof Error && 'stderr' in err ? String(err.stderr).trim() : '';
    throw new Error(
      `compiling native/sendfile.c failed (${process.env.CC ?? 'cc'}; install gcc and libc6-dev, or run hack/setup.sh)${stderr === '' ? '' : `:\n${stderr}`}`,
      { cause: err },
    );
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  buildNative(process.argv[2] ?? SOURCES_ADDON_DIR).then(
    (out) => process.stdout.write(`${out}\n`),
    (err: unknown) => {
      process.stderr.write(`build-native: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
