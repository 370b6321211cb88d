// The chart's init container on a harness node: `mirra configure`, the real
// CLI as a child process, writes the node's <certs.d>/<upstream>/hosts.toml
// (the node's own agent first, the upstream as the fallback server), with the
// flags the DaemonSet gives it. The harness writes the same file itself unless
// asked for this (ClusterOptions.runConfigure): one process per node less.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProcess } from '../support/process.ts';

const MIRRA = fileURLToPath(new URL('../../cmd/mirra.ts', import.meta.url));

export interface ConfigureRun {
  /** The node's directory: configure.log goes here. */
  dir: string;
  /** The node's name, for messages. */
  name: string;
  /** containerd's registry config_path on the node (its hosts dir). */
  hostsDir: string;
  /** host:port of the plain-http upstream. */
  upstreamHost: string;
  /** The node IP, as the chart's NODE_IP (downward API). */
  nodeIp: string;
  /** The port containerd reaches its agent on (the chart's hostPort). */
  agentPort: number;
  /** The command's entry point (default cmd/mirra.ts). */
  entry?: string | undefined;
  /** Told the pid, for leak checks. */
  onPid(pid: number): void;
}

/** Runs `mirra configure` for the node and waits for it; rejects with its last output line when it fails. */
export async function runConfigure(run: ConfigureRun): Promise<void> {
  const logFile = join(run.dir, 'configure.log');
  const child = startProcess({
    name: `configure-${run.name}`,
    command: process.execPath,
    args: [
      run.entry ?? MIRRA,
      'configure',
      `--containerd-registry-config-path=${run.hostsDir}`,
      `--mirrored-registries=http://${run.upstreamHost}`,
      `--mirror-targets=http://${run.nodeIp}:${run.agentPort}`,
    ],
    logFile,
    env: { ...process.env, NODE_IP: run.nodeIp },
  });
  run.onPid(child.pid);
  const code = await child.exited;
  if (code === 0) return;
  const output = (await readFile(logFile, 'utf8').catch(() => '')).trim().split('\n');
  throw new Error(`${run.name}: mirra configure exited (${code}): ${output.at(-1) ?? 'no output'}`);
}
