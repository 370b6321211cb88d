// Runs `mirra <command>` as a person runs it (a child process: cmd/mirra.ts,
// or a bundle) and collects its exit code and output, for the CLI's tests.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const MIRRA_ENTRY = fileURLToPath(new URL('../../cmd/mirra.ts', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** The whole environment of the child (default: PATH only, so no KUBECONFIG or HOME leaks in). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** The script to run (default cmd/mirra.ts). */
  entry?: string;
}

export function runMirra(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env = options.env ?? { PATH: process.env.PATH };
    const child = spawn(process.execPath, [options.entry ?? MIRRA_ENTRY, ...args], { env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}
