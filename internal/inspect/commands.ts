// `mirra shards` and `mirra locate` from their settings to what they print:
// list the agents' pods and the Service's EndpointSlices, compute the
// ownership as the agents do, and for locate ask the key's owners. Every
// failure is an InspectFailure, one line naming what to do about it
// (api-failure.ts); what the person should know beside the output (an agent
// whose status cannot be decoded, an owner that did not answer) are notes.
import type { KubeReader } from '../kube/client.ts';
import { createHasher } from '../routing/hash.ts';
import { describeApiFailure, type ApiAction } from './api-failure.ts';
import { listEndpoints, ownershipOf, type Endpoints } from './endpoints.ts';
import { locateKey, LocateError, locateNotes } from './locate.ts';
import { listAgentPods, statusNotes, type AgentPod } from './pods.ts';
import { locateReport, renderLocate, renderShards, shardsRows } from './report.ts';

/** How long listing the pods and the EndpointSlices may take. */
const LIST_TIMEOUT_MS = 30_000;

export interface InspectSettings {
  readonly client: KubeReader;
  /** The API server URL, for messages. */
  readonly server: string;
  readonly namespace: string;
  readonly selector: string;
  readonly serviceName: string;
  readonly output: 'table' | 'json';
}

/** What a command prints: its output on stdout, notes on stderr (one line each). */
export interface InspectOutput {
  readonly stdout: string;
  readonly notes: readonly string[];
}

/** Something to tell on stderr as one line, exit 1. */
export class InspectFailure extends Error {
  override readonly name = 'InspectFailure';
}

async function calling<T>(settings: InspectSettings, action: ApiAction, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  try {
    return await work(AbortSignal.timeout(LIST_TIMEOUT_MS));
  } catch (err) {
    throw new InspectFailure(describeApiFailure(action, err, settings.server));
  }
}

function endpointsOf(settings: InspectSettings): Promise<Endpoints> {
  const action: ApiAction = { verb: 'list', resource: 'endpointslices', group: 'discovery.k8s.io', namespace: settings.namespace };
  return calling(settings, action, (signal) => listEndpoints(settings.client, settings.namespace, settings.serviceName, signal));
}

function podsOf(settings: InspectSettings): Promise<AgentPod[]> {
  const action: ApiAction = { verb: 'list', resource: 'pods', group: '', namespace: settings.namespace };
  return calling(settings, action, (signal) => listAgentPods(settings.client, settings.namespace, settings.selector, signal));
}

/** Nothing found where the command looked: mirra is not installed there, or under other names (`flags` to pass then). */
function noAgents(settings: InspectSettings, searched: string, flags: string): InspectFailure {
  const { namespace } = settings;
  return new InspectFailure(
    `no mirra agents in namespace ${namespace}: ${searched} (is mirra installed in ${namespace}? pass --namespace, and ${flags} when the release names them otherwise)`,
  );
}

export async function shardsOutput(settings: InspectSettings): Promise<InspectOutput> {
  const pods = await podsOf(settings);
  const endpoints = await endpointsOf(settings);
  if (pods.length === 0 && endpoints.size === 0) {
    throw noAgents(
      settings,
      `no pod matches --selector ${settings.selector} and service ${settings.serviceName} has no EndpointSlices`,
      '--selector or --service-name',
    );
  }
  const rows = shardsRows(pods, endpoints, ownershipOf(await createHasher(), endpoints));
  const stdout = settings.output === 'json' ? JSON.stringify(rows, null, 2) : renderShards(rows, endpoints, settings.serviceName);
  return { stdout, notes: statusNotes(pods, settings.namespace) };
}

export async function locateOutput(settings: InspectSettings, key: string): Promise<InspectOutput> {
  const endpoints = await endpointsOf(settings);
  if (endpoints.size === 0) {
    throw noAgents(
      settings,
      `service ${settings.serviceName} has no EndpointSlices (label kubernetes.io/service-name=${settings.serviceName})`,
      '--service-name',
    );
  }
  const hasher = await createHasher();
  const { client, namespace, serviceName, server } = settings;
  const options = { client, server, namespace, serviceName, hasher, endpoints, table: ownershipOf(hasher, endpoints) };
  let located;
  try {
    located = await locateKey({ ...options, signal: AbortSignal.timeout(LIST_TIMEOUT_MS) }, key);
  } catch (err) {
    if (err instanceof LocateError) throw new InspectFailure(err.message);
    throw err;
  }
  const report = locateReport(located, endpoints);
  return { stdout: settings.output === 'json' ? JSON.stringify(report, null, 2) : renderLocate(report), notes: locateNotes(located) };
}
