// What `npm start` and `npm run cluster` need before they start anything:
// root (containerd), the containerd release the harness runs (MIRRA_CONTAINERD,
// found by its path under MIRRA_CONTAINERD_CACHE, not on PATH), docker-registry
// and skopeo. What is missing is an ExpectedFailure: one line that says what to
// do, shown without a stack trace, instead of a failure half-way through a
// start that has to be cleaned up.
import { access, constants } from 'node:fs/promises';
import { errorMessage } from '../internal/errors/message.ts';
import { containerdRelease } from '../tests/support/containerd-release.ts';
import { REGISTRY_BIN, SKOPEO_BIN } from '../tests/support/upstream.ts';

/** A failure a person can fix: its message is the one line to show. */
export class ExpectedFailure extends Error {
  override readonly name = 'ExpectedFailure';
}

function executable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
}

/** Rejects with an ExpectedFailure naming the first thing missing. */
export async function checkEnvironment(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  if (process.getuid?.() !== 0) throw new ExpectedFailure('containerd needs root: run it as root');
  let release;
  try {
    release = containerdRelease(env);
  } catch (err) {
    throw new ExpectedFailure(errorMessage(err));
  }
  if (!(await executable(release.containerd))) {
    throw new ExpectedFailure(`containerd ${release.series} is not installed: no ${release.containerd} (npm run setup installs it, as root)`);
  }
  for (const [name, path] of [
    ['docker-registry', REGISTRY_BIN],
    ['skopeo', SKOPEO_BIN],
  ] as const) {
    if (!(await executable(path))) throw new ExpectedFailure(`${name} is not installed: no ${path} (npm run setup installs it, as root)`);
  }
}
