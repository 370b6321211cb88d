// `mirra shards` and `mirra locate`: read the agents' pods and the Service's
// EndpointSlices through a kubeconfig (authenticated by
// @kubernetes/client-node, loaded only here) or the pod's service account,
// compute the shard ownership as the agents do, and for locate ask the key's
// owners through the API server's pods/proxy. Wiring only: the work is in
// internal/inspect. Every failure is one line on stderr naming the fix, exit 1.
import { flagHelp, parseFlags, rejectExtraArguments, usageExit, UsageError, wantsHelp, type FlagSpec } from '../internal/config/flags.ts';
import { parseServiceName } from '../internal/inspect/endpoints.ts';
import { InspectFailure, locateOutput, shardsOutput, type InspectOutput, type InspectSettings } from '../internal/inspect/commands.ts';
import { ClientNodeMissingError } from '../internal/inspect/client-node.ts';
import { connectToApi, type ApiConnection } from '../internal/inspect/connect.ts';
import { KubeConfigError } from '../internal/kube/kubeconfig.ts';
import { isDigest } from '../internal/oci/digest.ts';
import { normalizeReference } from '../internal/oci/reference.ts';

function flag<T>(spec: FlagSpec<T>): FlagSpec<T> {
  return spec;
}

const inspectFlags = {
  kubeconfig: flag({
    name: 'kubeconfig',
    env: 'KUBECONFIG',
    description: "kubeconfig file, or a list as in KUBECONFIG; empty: ~/.kube/config, else the pod's service account",
    defaultValue: '',
    parse: (raw) => raw,
  }),
  context: flag({
    name: 'context',
    env: 'MIRRA_CONTEXT',
    description: 'the kubeconfig context to use; empty: its current-context',
    defaultValue: '',
    parse: (raw) => raw,
  }),
  namespace: flag({ name: 'namespace', env: 'POD_NAMESPACE', description: 'namespace of the mirra agents', defaultValue: 'mirra', parse: (raw) => raw }),
  selector: flag({
    name: 'selector',
    env: 'MIRRA_PEER_SELECTOR',
    description: 'label selector of the agent pods',
    defaultValue: 'app.kubernetes.io/name=mirra',
    parse: (raw) => raw,
  }),
  serviceName: flag({
    name: 'service-name',
    env: 'MIRRA_SERVICE_NAME',
    description: "the agents' headless Service: its EndpointSlices say which agents are ready members",
    defaultValue: 'mirra',
    parse: parseServiceName,
  }),
  output: flag<'table' | 'json'>({
    name: 'output',
    env: 'MIRRA_OUTPUT',
    description: 'table or json',
    defaultValue: 'table',
    parse: (raw) => {
      if (raw !== 'table' && raw !== 'json') throw new Error('want table or json');
      return raw;
    },
  }),
};

type InspectValues = ReturnType<typeof parseFlags<typeof inspectFlags>>['values'];

const HELP = {
  shards:
    'usage: mirra shards [flags]\n\nPer agent: endpoint readiness, keys (its status annotation), shards it owns (computed from the ready endpoints, as the agents do), postings and last status update.',
  locate:
    'usage: mirra locate <digest|reference> [flags]\n\nThe agents that hold the digest or image reference (e.g. nginx:1.27), as the owners of its shard answer through the API server (pods/proxy).',
};

/** The flags, and for locate the key (a digest or a normalized reference); throws UsageError. */
function parseCommand(command: 'shards' | 'locate', argv: string[], env: NodeJS.ProcessEnv): { values: InspectValues; key: string } {
  const parsed = parseFlags(inspectFlags, argv, env);
  if (command === 'shards') {
    rejectExtraArguments(parsed.positionals);
    return { values: parsed.values, key: '' };
  }
  const [target] = parsed.positionals;
  if (target === undefined) throw new UsageError('locate needs a digest or an image reference');
  rejectExtraArguments(parsed.positionals, 1);
  const key = isDigest(target) ? target : normalizeReference(target);
  if (key === undefined) throw new UsageError(`${JSON.stringify(target)} is neither a digest nor an image reference`);
  return { values: parsed.values, key };
}

/** The commands' own failures: one line on stderr, exit 1; anything else is a bug and is thrown. */
function failureExit(command: string, err: unknown): number {
  if (!(err instanceof InspectFailure || err instanceof KubeConfigError || err instanceof ClientNodeMissingError)) throw err;
  process.stderr.write(`mirra ${command}: ${err.message}\n`);
  return 1;
}

function settingsOf(connection: ApiConnection, values: InspectValues): InspectSettings {
  const { namespace, selector, serviceName, output } = values;
  return { client: connection.client, server: connection.server, namespace, selector, serviceName, output };
}

function print(command: string, output: InspectOutput): void {
  for (const note of output.notes) process.stderr.write(`mirra ${command}: ${note}\n`);
  process.stdout.write(`${output.stdout}\n`);
}

export async function runInspect(command: 'shards' | 'locate', argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(`${HELP[command]}\n\nflags:\n${flagHelp(inspectFlags)}\n`);
    return 0;
  }
  let parsed;
  try {
    parsed = parseCommand(command, argv, env);
  } catch (err) {
    return usageExit(command, err);
  }
  let connection: ApiConnection | undefined;
  try {
    connection = await connectToApi({ kubeconfig: parsed.values.kubeconfig, context: parsed.values.context, env });
    const settings = settingsOf(connection, parsed.values);
    print(command, await (command === 'shards' ? shardsOutput(settings) : locateOutput(settings, parsed.key)));
    return 0;
  } catch (err) {
    return failureExit(command, err);
  } finally {
    connection?.client.close();
  }
}
