// A mirra agent (`mirra registry`) as a child process, the way a node runs it,
// with its JSON log captured for assertions.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SOURCES_ADDON_DIR } from '../../hack/build-native.ts';
import { SENDFILE_ADDON_FILE } from '../../internal/registry/sendfile-addon.ts';
import { portOpen, startProcess, waitFor, type Managed } from './process.ts';

const MIRRA = fileURLToPath(new URL('../../cmd/mirra.ts', import.meta.url));
/**
 * The sendfile addon hack/setup.sh builds: agents run from the sources use it
 * as the image's agent uses its own (beside the bundle), so the tests send
 * local blobs the way production does. A later --sendfile in extraArgs wins.
 */
export const SENDFILE_ADDON = join(SOURCES_ADDON_DIR, SENDFILE_ADDON_FILE);

export interface AgentOptions {
  dir: string;
  name: string;
  host: string;
  port: number;
  containerdSock: string;
  contentPath: string;
  mirroredRegistries?: string[];
  /** containerd's config.toml for the agent's start-up check (TestContainerd.configPath); without it the check is off (--preflight=false). */
  containerdConfigPath?: string;
  /** Serve /metrics on `host:metricsPort`; without it the metrics endpoint is off (no agent binds the default :9090). */
  metricsPort?: number;
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** The command's entry point (default cmd/mirra.ts; dist/mirra.mjs: the agent as the image runs it, after `npm run build`). */
  entry?: string;
  /** Node's own flags before the entry point (V8 flags that NODE_OPTIONS does not take, as the image's ENTRYPOINT gives them). */
  nodeArgs?: string[];
}

export interface TestAgent {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** http://<host>:<metricsPort>/metrics, when metricsPort was given. */
  readonly metricsUrl: string | undefined;
  readonly process: Managed;
  readonly logFile: string;
  /** Parsed JSON log lines so far. */
  logLines(): Promise<Array<Record<string, unknown>>>;
  /** Access-log lines (one per request). */
  accessLines(): Promise<Array<Record<string, unknown>>>;
  stop(): Promise<void>;
}

export async function startAgent(options: AgentOptions): Promise<TestAgent> {
  const logFile = join(options.dir, `${options.name}.log`);
  const args = [
    ...(options.nodeArgs ?? []),
    options.entry ?? MIRRA,
    'registry',
    '--containerd-sock',
    options.containerdSock,
    '--containerd-content-path',
    options.contentPath,
    '--registry-addr',
    `${options.host}:${options.port}`,
    '--mirrored-registries',
    (options.mirroredRegistries ?? []).join(','),
    '--log-level',
    'debug',
    `--metrics-addr=${options.metricsPort === undefined ? '' : `${options.host}:${options.metricsPort}`}`,
    ...(options.containerdConfigPath === undefined ? ['--preflight=false'] : ['--containerd-config-path', options.containerdConfigPath]),
    ...(options.entry === undefined ? ['--sendfile', SENDFILE_ADDON] : []),
    ...(options.extraArgs ?? []),
  ];
  const child = startProcess({ name: options.name, command: process.execPath, args, logFile, env: { ...process.env, ...options.env } });
  try {
    // (waitFor treats a throwing check as "not yet": an exit ends the wait instead, so a dying agent fails fast.)
    await waitFor(`${options.name} to listen on ${options.host}:${options.port}`, async () => !child.isRunning() || portOpen(options.host, options.port));
    if (!child.isRunning()) throw new Error(`${options.name} exited (${await child.exited}) before listening; see ${logFile}`);
  } catch (err) {
    await child.stop(1000);
    throw err;
  }
  const logLines = async (): Promise<Array<Record<string, unknown>>> => {
    const text = await readFile(logFile, 'utf8').catch(() => '');
    const lines: Array<Record<string, unknown>> = [];
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const parsed: unknown = JSON.parse(line);
        if (typeof parsed === 'object' && parsed !== null) lines.push(parsed as Record<string, unknown>);
      } catch {
        // a partial line while the agent is writing
      }
    }
    return lines;
  };
  return {
    url: `http://${options.host}:${options.port}`,
    host: options.host,
    port: options.port,
    metricsUrl: options.metricsPort === undefined ? undefined : `http://${options.host}:${options.metricsPort}/metrics`,
    process: child,
    logFile,
    logLines,
    accessLines: async () => (await logLines()).filter((line) => typeof line.handler === 'string' && typeof line.status === 'number'),
    stop: () => child.stop(),
  };
}
