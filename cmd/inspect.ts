// `mirra shards` and `mirra locate`: read the agents' pods through a
// kubeconfig (or in-cluster config) and decode their summaries. Wiring only.
import { flagHelp, parseFlags, rejectExtraArguments, usageExit, UsageError, wantsHelp, type FlagSpec } from '../internal/config/flags.ts';
import { listAgentPods } from '../internal/inspect/pods.ts';
import { locate, renderLocate, renderShards, shardsRows } from '../internal/inspect/report.ts';
import { loadKubeConfig } from '../internal/kube/config.ts';
import { createKubeClient } from '../internal/kube/client.ts';
import { KubeConfigError } from '../internal/kube/kubeconfig.ts';
import { describeError } from '../internal/kube/retry.ts';
import { isDigest } from '../internal/oci/digest.ts';
import { normalizeReference } from '../internal/oci/reference.ts';
import { createHasher } from '../internal/routing/hash.ts';

/** How long listing the agents' pods may take. */
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

const HELP = {
  shards: 'usage: mirra shards [flags]\n\nPer agent: keys, shards, annotation bytes, generation and last update of its content summary.',
  locate: 'usage: mirra locate <digest|reference> [flags]\n\nThe agents whose summary claims the digest or image reference (e.g. nginx:1.27).',
};

export async function runInspect(command: 'shards' | 'locate', argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(`${HELP[command]}\n\nflags:\n${flagHelp(inspectFlags)}\n`);
    return 0;
  }
  let values;
  let key: string | undefined;
  try {
    const parsed = parseFlags(inspectFlags, argv, env);
    values = parsed.values;
    if (command === 'locate') {
      const [target] = parsed.positionals;
      if (target === undefined) throw new UsageError('locate needs a digest or an image reference');
      rejectExtraArguments(parsed.positionals, 1);
      key = isDigest(target) ? target : normalizeReference(target);
      if (key === undefined) throw new UsageError(`${JSON.stringify(target)} is neither a digest nor an image reference`);
    } else {
      rejectExtraArguments(parsed.positionals);
    }
  } catch (err) {
    return usageExit(command, err);
  }
  let kube;
  try {
    kube = loadKubeConfig({ kubeconfigPath: values.kubeconfig, env });
  } catch (err) {
    if (!(err instanceof KubeConfigError)) throw err;
    process.stderr.write(`mirra ${command}: ${err.message}\n`);
    return 1;
  }
  const client = createKubeClient(kube.target);
  let pods;
  try {
    pods = await listAgentPods(client, values.namespace, values.selector, AbortSignal.timeout(LIST_TIMEOUT_MS));
  } catch (err) {
    process.stderr.write(`mirra ${command}: listing the agent pods at ${kube.target.server}: ${describeError(err)}\n`);
    return 1;
  } finally {
    client.close();
  }
  if (command === 'shards') {
    const rows = shardsRows(pods);
    process.stdout.write(`${values.output === 'json' ? JSON.stringify(rows, null, 2) : renderShards(rows)}\n`);
    return 0;
  }
  const target = key ?? '';
  const rows = locate(pods, target, await createHasher());
  process.stdout.write(`${values.output === 'json' ? JSON.stringify({ key: target, agents: rows }, null, 2) : renderLocate(target, rows)}\n`);
  return 0;
}
