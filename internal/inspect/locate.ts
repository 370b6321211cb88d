// `mirra locate`: which agents hold a key, asked of the key's shard owners as
// the agents ask them (internal/owners/locator.ts), but from outside the
// cluster: through the API server's pods/proxy subresource, unsigned, to the
// owner's registry port. The first owner is asked; the second too when the
// first fails or answers `warming` (it took the shard over lately), and their
// holders are merged, first owner's first. A failure of the caller's own
// access (RBAC, credentials, the API server out of reach) stops at once: the
// second owner would fail alike.
import { KubeApiError, type KubeReader } from '../kube/client.ts';
import { callSignal } from '../kube/retry.ts';
import { isRecord } from '../json/narrow.ts';
import { mergeHolders } from '../owners/locator.ts';
import type { OwnershipTable } from '../owners/ownership.ts';
import { HOLDERS_PATH, keyHex, OWNER_SHARDS, parseHoldersAnswer } from '../owners/protocol.ts';
import type { Hasher } from '../routing/hash.ts';
import { keyNumber, shardOfKey } from '../routing/owner-store.ts';
import { errorMessage } from '../errors/message.ts';
import { describeApiFailure, isAccessFailure, isTimeout, type ApiAction } from './api-failure.ts';
import type { Endpoints } from './endpoints.ts';

/** How long one owner may take to answer through the API server. */
export const ASK_TIMEOUT_MS = 10_000;

/** What one owner said, or why it said nothing. */
export interface OwnerAnswer {
  owner: string;
  holders: string[] | null;
  warming: boolean | null;
  error: string | null;
  /** The OCI error code of the agent's refusal (e.g. DENIED with --local-only), when it answered one. */
  errorCode: string | null;
}

export interface Located {
  key: string;
  shard: number;
  owners: string[];
  /** The owners asked, in order. */
  answers: OwnerAnswer[];
  /** The merged holders, first owner's first. */
  holders: string[];
}

/** No owner could be asked, or none answered: the message is one line naming why. */
export class LocateError extends Error {
  override readonly name = 'LocateError';
}

export interface LocateOptions {
  /** The API server URL, for messages. */
  server: string;
  client: KubeReader;
  namespace: string;
  serviceName: string;
  hasher: Hasher;
  endpoints: Endpoints;
  table: OwnershipTable;
  signal: AbortSignal;
  askTimeoutMs?: number;
}

/** Added when an owner refused the lookup (DENIED): the agents' own reason names --local-only. */
const LOCAL_ONLY_HINT = "to ask through the API server, add its address to the agents' --local-clients";

/** The pods/proxy path of an owner's holders route (on the endpoint's port, else the pod's first container port). */
export function holdersProxyPath(namespace: string, pod: string, port: number | undefined, key: number): string {
  const target = port === undefined ? encodeURIComponent(pod) : `${encodeURIComponent(pod)}:${port}`;
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${target}/proxy${HOLDERS_PATH}${keyHex(key)}`;
}

/** An OCI error body's code and reason (the agent's answer, passed on by the API server), if the body is one. */
function ociError(body: unknown): { code: string; reason: string } | undefined {
  if (!isRecord(body) || !Array.isArray(body.errors)) return undefined;
  const first: unknown = body.errors[0];
  if (!isRecord(first) || typeof first.code !== 'string') return undefined;
  const detail = first.detail;
  const reason = isRecord(detail) && typeof detail.reason === 'string' ? detail.reason : typeof first.message === 'string' ? first.message : '';
  return { code: first.code, reason };
}

function failed(options: LocateOptions, owner: string, err: unknown): OwnerAnswer {
  const oci = err instanceof KubeApiError ? ociError(err.body) : undefined;
  if (err instanceof KubeApiError && oci !== undefined) {
    const error = `HTTP ${err.status} ${oci.code}${oci.reason === '' ? '' : `: ${oci.reason}`}`;
    return { owner, holders: null, warming: null, error, errorCode: oci.code };
  }
  const action: ApiAction = { verb: 'get', resource: 'pods/proxy', group: '', namespace: options.namespace };
  if (isAccessFailure(err)) throw new LocateError(describeApiFailure(action, err, options.server));
  const timeoutMs = options.askTimeoutMs ?? ASK_TIMEOUT_MS;
  const error = isTimeout(err) ? `no answer within ${timeoutMs / 1000} s` : (errorMessage(err).split('\n')[0] ?? '');
  return { owner, holders: null, warming: null, error, errorCode: null };
}

async function askOwner(options: LocateOptions, owner: string, key: number): Promise<OwnerAnswer> {
  const path = holdersProxyPath(options.namespace, owner, options.endpoints.get(owner)?.port, key);
  try {
    const body = await options.client.get(path, {}, callSignal(options.signal, options.askTimeoutMs ?? ASK_TIMEOUT_MS));
    const answer = parseHoldersAnswer(body);
    return { owner, holders: [...answer.holders], warming: answer.warming, error: null, errorCode: null };
  } catch (err) {
    return failed(options, owner, err);
  }
}

function noAnswer(shard: number, answers: readonly OwnerAnswer[]): LocateError {
  const reasons = answers.map((a) => `${a.owner}: ${a.error ?? 'no answer'}`).join('; ');
  const denied = answers.some((a) => a.errorCode === 'DENIED');
  return new LocateError(`no owner of shard ${shard} answered: ${reasons}${denied ? `; ${LOCAL_ONLY_HINT}` : ''}`);
}

/** The holders of `key` (a digest or a normalized reference), as its shard's owners know them. */
export async function locateKey(options: LocateOptions, key: string): Promise<Located> {
  const number = keyNumber(options.hasher.hash(key));
  const shard = shardOfKey(number, OWNER_SHARDS);
  const owners = [...options.table.owners(shard)];
  const [first, second] = owners;
  if (first === undefined) {
    throw new LocateError(
      `no agent has a ready endpoint in the EndpointSlices of service ${options.serviceName} in namespace ${options.namespace}: shard ${shard} has no owner to ask (kubectl get pods -n ${options.namespace} shows why the agents are not ready)`,
    );
  }
  const firstAnswer = await askOwner(options, first, number);
  const answers = [firstAnswer];
  if (second !== undefined && (firstAnswer.holders === null || firstAnswer.warming === true)) answers.push(await askOwner(options, second, number));
  if (answers.every((a) => a.holders === null)) throw noAnswer(shard, answers);
  return { key, shard, owners, answers, holders: mergeHolders(answers.map((answer) => answer.holders ?? [])) };
}

/** What the person should know beside the holders: owners that failed, answers that may be incomplete. */
export function locateNotes(located: Located): string[] {
  const notes = located.answers.filter((a) => a.error !== null).map((a) => `owner ${a.owner} of shard ${located.shard} did not answer: ${a.error}`);
  const answered = located.answers.filter((a) => a.holders !== null);
  if (answered.length > 0 && answered.every((a) => a.warming === true)) {
    notes.push(`the owners of shard ${located.shard} took it over lately: holders may still be filling it in`);
  }
  return notes;
}
