// `mirra shards` and `mirra locate`: read the agents' pods and the Service's
// EndpointSlices through a kubeconfig (or in-cluster config), compute the
// shard ownership as the agents do, and for locate ask the key's owners
// through the API server's pods/proxy. Wiring only: the work is in
// internal/inspect.
import { flagHelp, parseFlags, rejectExtraArguments, usageExit, UsageError, wantsHelp, type FlagSpec } from '../internal/config/flags.ts';
import { listEndpoints, ownershipOf, parseServiceName, type Endpoints } from '../internal/inspect/endpoints.ts';
import { locateKey, LocateError, locateNotes } from '../internal/inspect/locate.ts';
import { listAgentPods } from '../internal/inspect/pods.ts';
import { locateReport, renderLocate, renderShards, shardsRows } from '../internal/inspect/report.ts';
import { loadKubeConfig } from '../internal/kube/config.ts';
import { createKubeClient, type KubeClient } from '../internal/kube/client.ts';
import { KubeConfigError } from '../internal/kube/kubeconfig.ts';
import { describeError } from '../internal/kube/retry.ts';
import { isDigest } from '../internal/oci/digest.ts';
import { normalizeReference } from '../internal/oci/reference.ts';
import { createHasher } from '../internal/routing/hash.ts';

/** How long listing the pods and the EndpointSlices may take. */
const LIST_TIMEOUT_MS = 30_000;

function flag<T>(spec: FlagSpec<T>): FlagSpec<T> {
  return spec;
}

const inspectFlags = {
  kubeconfig: flag({ name: 'kubeconfig', env: 'KUBECONFIG', description: 'kubeconfig; empty means in-cluster config', defaultValue: '', parse: (raw) => raw }),
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

/** Something to tell on stderr as one line, exit 1. */
class InspectFailure extends Error {}

async function listing<T>(what: string, server: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    throw new InspectFailure(`listing ${what} at ${server}: ${describeError(err)}`);
  }
}

function endpointsOf(client: KubeClient, values: InspectValues, server: string): Promise<Endpoints> {
  const work = listEndpoints(client, values.namespace, values.serviceName, AbortSignal.timeout(LIST_TIMEOUT_MS));
  return listing(`the EndpointSlices of service ${values.serviceName}`, server, work);
}

async function shards(client: KubeClient, values: InspectValues, server: string): Promise<void> {
  const pods = await listing('the agent pods', server, listAgentPods(client, values.namespace, values.selector, AbortSignal.timeout(LIST_TIMEOUT_MS)));
  const endpoints = await endpointsOf(client, values, server);
  const rows = shardsRows(pods, endpoints, ownershipOf(await createHasher(), endpoints));
  process.stdout.write(`${values.output === 'json' ? JSON.stringify(rows, null, 2) : renderShards(rows, endpoints, values.serviceName)}\n`);
}

async function locate(client: KubeClient, values: InspectValues, server: string, key: string): Promise<void> {
  const endpoints = await endpointsOf(client, values, server);
  const hasher = await createHasher();
  const options = { client, namespace: values.namespace, serviceName: values.serviceName, hasher, endpoints, table: ownershipOf(hasher, endpoints) };
  let located;
  try {
    located = await locateKey({ ...options, signal: AbortSignal.timeout(LIST_TIMEOUT_MS) }, key);
  } catch (err) {
    if (err instanceof LocateError) throw new InspectFailure(err.message);
    throw err;
  }
  for (const note of locateNotes(located)) process.stderr.write(`mirra locate: ${note}\n`);
  const report = locateReport(located, endpoints);
  process.stdout.write(`${values.output === 'json' ? JSON.stringify(report, null, 2) : renderLocate(report)}\n`);
}

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
  let kube;
  try {
    kube = loadKubeConfig({ kubeconfigPath: parsed.values.kubeconfig, env });
  } catch (err) {
    if (!(err instanceof KubeConfigError)) throw err;
    process.stderr.write(`mirra ${command}: ${err.message}\n`);
    return 1;
  }
  const client = createKubeClient(kube.target);
  try {
    const server = kube.target.server;
    await (command === 'shards' ? shards(client, parsed.values, server) : locate(client, parsed.values, server, parsed.key));
    return 0;
  } catch (err) {
    if (!(err instanceof InspectFailure)) throw err;
    process.stderr.write(`mirra ${command}: ${err.message}\n`);
    return 1;
  } finally {
    client.close();
  }
}
