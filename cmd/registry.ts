// `mirra registry`: the agent on every node. Wiring only: flags, kube config,
// peer keys, the sendfile addon, the containerd config preflight and the signals, around
// startAgent (internal/agent/agent.ts).
import { startAgent } from '../internal/agent/agent.ts';
import { loadPeerKeys, PeerSecretError, type PeerKeys } from '../internal/auth/secret.ts';
import { agentFlags, pullAccessProblem } from '../internal/config/agent-flags.ts';
import { flagHelp, parseFlags, rejectExtraArguments, usageExit, UsageError, wantsHelp } from '../internal/config/flags.ts';
import { checkContainerdConfig } from '../internal/containerd/preflight.ts';
import { containerdVersion } from '../internal/containerd/version.ts';
import { loadKubeConfig, type LoadedKubeConfig } from '../internal/kube/config.ts';
import { KubeConfigError } from '../internal/kube/kubeconfig.ts';
import { createLogger } from '../internal/log/logger.ts';
import { loadSendfile, type SendfileLoad } from '../internal/registry/sendfile-addon.ts';

const HELP = `usage: mirra registry [flags]

Serves the OCI distribution read API (/v2/) from the node's containerd content
store, for containerd to use as a registry mirror.

flags (each can also be set by its environment variable):
${flagHelp(agentFlags)}
`;

export async function runRegistry(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(HELP);
    return 0;
  }
  let config;
  try {
    const parsed = parseFlags(agentFlags, argv, env);
    rejectExtraArguments(parsed.positionals);
    config = parsed.values;
    const problem = pullAccessProblem(config);
    if (problem !== undefined) throw new UsageError(problem);
  } catch (err) {
    return usageExit('registry', err);
  }

  let kubeConfig: LoadedKubeConfig | undefined;
  if (config.podName !== '') {
    try {
      kubeConfig = loadKubeConfig({ kubeconfigPath: config.kubeconfig, env });
    } catch (err) {
      if (!(err instanceof KubeConfigError)) throw err;
      process.stderr.write(`mirra registry: ${err.message}\n`);
      return 1;
    }
  }

  let peerKeys: PeerKeys | undefined;
  if (config.peerSecretFile !== '') {
    try {
      peerKeys = await loadPeerKeys(config.peerSecretFile);
    } catch (err) {
      if (!(err instanceof PeerSecretError)) throw err;
      process.stderr.write(`mirra registry: ${err.message}\n`);
      return 1;
    }
  }

  let sendfile: SendfileLoad;
  try {
    sendfile = loadSendfile(config.sendfile);
  } catch (err) {
    process.stderr.write(`mirra registry: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }

  if (config.preflight) {
    // A containerd that does not answer yet is an unknown version to the check (taken as 2.1 or later).
    const problem = await checkContainerdConfig(config.containerdConfigPath, await containerdVersion(config.containerdSock));
    if (problem !== undefined) {
      process.stderr.write(`mirra registry: ${problem}\n`);
      return 1;
    }
  }

  const logger = createLogger(config.logLevel).child({ node: config.nodeName || undefined, pod: config.podName || undefined });
  // From here on SIGTERM/SIGINT stop the agent gracefully (below), even during start-up.
  const stopSignal = nextSignal();
  const agent = await startAgent({ flags: config, logger, kubeConfig, peerKeys, sendfile });

  const signal = await stopSignal;
  logger.info({ signal, graceMs: config.shutdownGraceMs }, 'shutting down');
  await agent.close({
    // A second signal cuts the running streams.
    hurry: nextSignal(),
    // A handle left open by a library must not keep a stopping agent alive.
    onDrained: () =>
      setTimeout(() => {
        logger.warn('still running 3 s after the registry closed: exiting');
        process.exit(0);
      }, 3000).unref(),
  });
  return 0;
}

/** The next SIGTERM or SIGINT (while waiting, neither kills the process). */
function nextSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(signal);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}
