// `mirra registry`: the agent on every node. Wiring only.
import { agentFlags } from '../internal/config/agent.ts';
import { formatListenAddress } from '../internal/config/address.ts';
import { flagHelp, parseFlags, UsageError } from '../internal/config/flags.ts';
import { createContainerdClient } from '../internal/containerd/client.ts';
import { watchChanges } from '../internal/containerd/events.ts';
import { createContainerdStore } from '../internal/containerd/store.ts';
import { createLogger } from '../internal/log/logger.ts';
import { createRegistryApp } from '../internal/registry/app.ts';

const HELP = `usage: mirra registry [flags]

Serves the OCI distribution read API (/v2/) from the node's containerd content
store, for containerd to use as a registry mirror.

flags (each can also be set by its environment variable):
${flagHelp(agentFlags)}
`;

export async function runRegistry(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  let config;
  try {
    const parsed = parseFlags(agentFlags, argv, env);
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
    config = parsed.values;
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`mirra registry: ${err.message}\n`);
    return 2;
  }

  const logger = createLogger(config.logLevel);
  const client = createContainerdClient({ socket: config.containerdSock, namespace: config.containerdNamespace });
  const store = createContainerdStore({ client, contentPath: config.containerdContentPath, logger });
  const changes = watchChanges({
    client,
    logger: logger.child({ component: 'containerd-events' }),
    onChange: (change) => store.observe(change),
  });
  await store.refresh().catch((err: unknown) => logger.warn({ err }, 'initial scan of containerd failed; serving anyway'));
  const app = createRegistryApp({
    store,
    logger,
    mirroredRegistries: config.mirroredRegistries,
    resolveTags: config.resolveTags,
    ready: () => changes.connected,
  });

  await app.listen({ host: config.registryAddr.host, port: config.registryAddr.port });
  logger.info(
    {
      addr: formatListenAddress(config.registryAddr),
      containerdSock: config.containerdSock,
      namespace: config.containerdNamespace,
      mirroredRegistries: config.mirroredRegistries,
    },
    'registry listening',
  );

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  logger.info({ signal }, 'shutting down');
  changes.close();
  await app.close();
  client.close();
  return 0;
}
