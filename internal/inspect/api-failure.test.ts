// The one-line messages of failed API calls beyond what the commands' tests
// provoke against the stand-in (cmd/inspect-errors.test.ts): a timeout, 404,
// 5xx, and which failures are the caller's access (every call would fail
// alike) rather than one pod's.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KubeApiError, KubeCredentialsError } from '../kube/client.ts';
import { describeApiFailure, isAccessFailure, type ApiAction } from './api-failure.ts';

const PODS: ApiAction = { verb: 'list', resource: 'pods', group: '', namespace: 'mirra' };
const SERVER = 'https://10.0.0.1:6443';

function status(code: number, reason: string, message: string): KubeApiError {
  return new KubeApiError(code, {}, { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message });
}

function networkError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

test('a timeout, a 404 and a 5xx name the server and what to check', () => {
  const aborted = new Error('This operation was aborted', { cause: new DOMException('The operation was aborted due to timeout', 'TimeoutError') });
  assert.match(
    describeApiFailure(PODS, aborted, SERVER),
    /^cannot list pods in namespace mirra: the API server at https:\/\/10\.0\.0\.1:6443 did not answer in time \(.*proxy-url\?\)$/,
  );
  assert.match(
    describeApiFailure(PODS, status(404, 'NotFound', 'the server could not find the requested resource'), SERVER),
    /^cannot list pods in namespace mirra: the API server at .* does not serve it \(HTTP 404: the server could not find the requested resource; is the kubeconfig's server the cluster's API server\?\)$/,
  );
  assert.match(describeApiFailure(PODS, status(500, 'InternalError', 'etcd is down'), SERVER), /answered HTTP 500: etcd is down \(try again; .*\)$/);
  assert.match(
    describeApiFailure(PODS, networkError('ENOTFOUND', 'getaddrinfo ENOTFOUND api.example'), SERVER),
    /^cannot reach the Kubernetes API at .*: getaddrinfo ENOTFOUND api\.example \(/,
  );
});

test("the caller's access (RBAC, credentials, the API out of reach) is told from one pod's failure through pods/proxy", () => {
  assert.equal(isAccessFailure(status(403, 'Forbidden', 'pods "a" is forbidden')), true);
  assert.equal(isAccessFailure(status(401, 'Unauthorized', 'Unauthorized')), true);
  assert.equal(isAccessFailure(new KubeCredentialsError('the exec plugin failed')), true);
  assert.equal(isAccessFailure(networkError('ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.1:6443')), true);
  assert.equal(isAccessFailure(status(503, 'ServiceUnavailable', 'error trying to reach service: dial tcp 10.1.0.5:5000: connect: connection refused')), false);
  assert.equal(isAccessFailure(new KubeApiError(403, {}, { errors: [{ code: 'DENIED', message: 'local clients only' }] })), false, "the agent's own 403");
  assert.equal(isAccessFailure(new DOMException('timeout', 'TimeoutError')), false, 'a slow owner');
});
