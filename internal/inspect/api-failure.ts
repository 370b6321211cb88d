// What `mirra shards` and `mirra locate` say when a call to the Kubernetes API
// fails: one line with what could not be done, why, and what fixes it (the
// RBAC permission that is missing, the credentials to renew, the cluster
// that cannot be reached), never a stack trace. The same failure on every
// call (the caller's access, not an agent's) is told apart so that locate
// stops at the first.
import { isRecord } from '../json/narrow.ts';
import { KubeApiError, KubeCredentialsError } from '../kube/client.ts';
import { errorMessage } from '../errors/message.ts';

/** One API call, as RBAC names it. */
export interface ApiAction {
  readonly verb: 'get' | 'list';
  /** The resource, with its subresource: `pods`, `pods/proxy`, `endpointslices`. */
  readonly resource: string;
  /** The API group: '' for the core group. */
  readonly group: string;
  readonly namespace: string;
}

/** Network errors that mean the API server was not reached at all. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE']);
/** TLS errors: the server's certificate did not verify. */
const TLS_PATTERN = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME|UNABLE_TO_GET_ISSUER/;

/** `pods` or `endpointslices.discovery.k8s.io`, as kubectl names a resource. */
function qualified(action: ApiAction): string {
  return action.group === '' ? action.resource : `${action.resource}.${action.group}`;
}

function what(action: ApiAction): string {
  return `cannot ${action.verb} ${qualified(action)} in namespace ${action.namespace}`;
}

/** A metav1.Status: the API server's own answer (a pod's answer through pods/proxy is not one). */
function statusOf(err: unknown): { reason: string; message: string } | undefined {
  if (!(err instanceof KubeApiError) || !isRecord(err.body) || err.body['kind'] !== 'Status') return undefined;
  const { reason, message } = err.body;
  return { reason: typeof reason === 'string' ? reason : '', message: typeof message === 'string' ? message : '' };
}

function codeOf(err: unknown): string {
  const cause: unknown = err instanceof Error && err.cause !== undefined ? err.cause : err;
  return isRecord(cause) && typeof cause['code'] === 'string' ? cause['code'] : '';
}

/** A signal's timeout: the DOMException itself, or the AbortError of the request it cut, with it as cause. */
export function isTimeout(err: unknown): boolean {
  return err instanceof Error && (err.name === 'TimeoutError' || (err.cause instanceof Error && err.cause.name === 'TimeoutError'));
}

function canI(action: ApiAction): string {
  const [resource, subresource] = action.resource.split('/');
  const target = action.group === '' ? (resource ?? '') : `${resource ?? ''}.${action.group}`;
  return `kubectl auth can-i ${action.verb} ${target}${subresource === undefined ? '' : ` --subresource=${subresource}`} -n ${action.namespace}`;
}

function forbidden(action: ApiAction, said: string): string {
  const fix = `grant it with a Role and RoleBinding in ${action.namespace}, or use a kubeconfig user that has it; check: ${canI(action)}`;
  return `${what(action)}: forbidden (needs ${action.verb} on ${qualified(action)}; ${fix}; the API server said: ${said})`;
}

function httpFailure(action: ApiAction, err: KubeApiError, server: string): string {
  const said = statusOf(err)?.message || err.message;
  if (err.status === 403) return forbidden(action, said);
  if (err.status === 401)
    return `${what(action)}: the API server at ${server} refused the credentials (HTTP 401: log in again or renew the kubeconfig user's token)`;
  if (err.status === 404)
    return `${what(action)}: the API server at ${server} does not serve it (${err.message}; is the kubeconfig's server the cluster's API server?)`;
  return `${what(action)}: the API server at ${server} answered ${err.message} (try again; if it stays, the cluster's API server is unwell)`;
}

/** No answer from the API server: unreachable, a certificate that does not verify, or too slow. */
function noAnswer(action: ApiAction, err: unknown, server: string): string {
  const message = errorMessage(err).split('\n')[0] ?? '';
  const code = codeOf(err);
  if (isTimeout(err)) {
    return `${what(action)}: the API server at ${server} did not answer in time (is it reachable from here: VPN, firewall, the kubeconfig's proxy-url?)`;
  }
  if (TLS_PATTERN.test(code)) {
    // Node adds advice on --use-system-ca after a ';': the kubeconfig's CA is what counts here.
    return `cannot reach the Kubernetes API at ${server}: ${message.split(';')[0] ?? ''} (${code}: the server's certificate does not verify against the kubeconfig's certificate-authority: check the context and its cluster)`;
  }
  if (UNREACHABLE.has(code)) {
    return `cannot reach the Kubernetes API at ${server}: ${message} (is the cluster up and reachable from here, and the kubeconfig's context the right one?)`;
  }
  return `${what(action)} at ${server}: ${message}`;
}

/** One line: what could not be done, why, and what fixes it. */
export function describeApiFailure(action: ApiAction, err: unknown, server: string): string {
  if (err instanceof KubeCredentialsError) return `${what(action)}: ${err.message} (log in again, or fix the kubeconfig's user)`;
  if (err instanceof KubeApiError) return httpFailure(action, err, server);
  return noAnswer(action, err, server);
}

/**
 * Whether every call would fail alike: the caller's credentials, its RBAC
 * permissions, or the API server out of reach; not a pod that did not
 * answer through pods/proxy (a 503 Status, or the pod's own error body).
 */
export function isAccessFailure(err: unknown): boolean {
  if (err instanceof KubeCredentialsError) return true;
  const status = statusOf(err);
  if (status !== undefined) return status.reason === 'Forbidden' || status.reason === 'Unauthorized';
  if (err instanceof KubeApiError) return false;
  const code = codeOf(err);
  return UNREACHABLE.has(code) || TLS_PATTERN.test(code);
}
