// The kubeconfig of `mirra shards` and `mirra locate` as @kubernetes/client-node
// takes it (KubeConfig.loadFromOptions): the current context's cluster and
// user, as internal/kube/kubeconfig.ts merged them with kubectl's rules, with
// what client-node gets wrong done here as kubectl does it:
// - a list of files with the same name twice: the first wins (client-node
//   throws "Duplicate cluster");
// - a user's tokenFile is read (client-node reads `token-file`, which kubectl
//   does not write, and sends no credentials at all);
// - an exec command with a slash is relative to the kubeconfig's directory
//   (client-node runs it relative to the working directory), and the plugin
//   gets KUBERNETES_EXEC_INFO;
// - a plain http server needs no insecure-skip-tls-verify (client-node
//   refuses it without);
// - certificate and key files are read relative to their own file (client-
//   node's loadFromOptions leaves them relative to the working directory);
// - impersonation of groups, uid and extras (`as-groups`, `as-uid`,
//   `as-user-extra`) is sent as headers (client-node sends `as` only).
// The rest (exec plugins, OIDC and the other auth providers, basic auth,
// `as`, proxy-url, tls-server-name) is client-node's. Only types are imported
// here: the package itself is loaded by client-node.ts, when a command needs it.
import type { OutgoingHttpHeaders } from 'node:http';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Cluster, Context, User } from '@kubernetes/client-node';
import { errorMessage } from '../errors/message.ts';
import { isRecord } from '../json/narrow.ts';
import { fileOrData, KubeConfigError, optionalString, type CurrentEntries, type KubeconfigEntry } from '../kube/kubeconfig.ts';

/** What KubeConfig.loadFromOptions takes. */
export interface ClientNodeOptions {
  readonly clusters: Cluster[];
  readonly users: User[];
  readonly contexts: Context[];
  readonly currentContext: string;
}

export interface ClientNodeConfig {
  readonly options: ClientNodeOptions;
  readonly server: string;
  /** Headers client-node does not send (impersonation beyond the user), added to every request. */
  readonly headers: OutgoingHttpHeaders;
  /** How the user proves who it is, for messages: `user "jane" of context "prod" (exec plugin /usr/bin/aws)`. */
  readonly identity: string;
}

/** The name client-node gets for a context without a user (it applies no TLS settings without one). */
const NO_USER = 'mirra-no-user';

function where(entry: KubeconfigEntry, kind: 'cluster' | 'user'): string {
  return `${entry.file}: ${kind} ${entry.name}`;
}

function base64(bytes: Buffer | undefined): string | undefined {
  return bytes === undefined ? undefined : bytes.toString('base64');
}

function clusterOf(entry: KubeconfigEntry): Cluster {
  const server = optionalString(entry, 'server');
  if (server === undefined) throw new KubeConfigError(`${where(entry, 'cluster')} has no server`);
  const insecure = entry.body['insecure-skip-tls-verify'] === true;
  return {
    name: entry.name,
    server,
    caData: base64(fileOrData(entry, 'certificate-authority')),
    // kubectl sends plain http to an http:// server as it is; client-node wants the flag for it.
    skipTLSVerify: insecure || server.startsWith('http:'),
    tlsServerName: optionalString(entry, 'tls-server-name'),
    proxyUrl: optionalString(entry, 'proxy-url'),
  };
}

/** The token of a tokenFile, relative to the kubeconfig, trimmed (client-node never reads it). */
function tokenFromFile(entry: KubeconfigEntry, path: string): string {
  const full = resolve(entry.dir, path);
  let token: string;
  try {
    token = readFileSync(full, 'utf8').trim();
  } catch (err) {
    throw new KubeConfigError(`${where(entry, 'user')}: tokenFile ${full} cannot be read (${errorMessage(err)}): fix the path, or log in again to write it`);
  }
  if (token === '') throw new KubeConfigError(`${where(entry, 'user')}: tokenFile ${full} is empty`);
  return token;
}

/** What KUBERNETES_EXEC_INFO tells the plugin: not interactive, and the cluster when it asks for it (provideClusterInfo). */
function execInfo(exec: Record<string, unknown>, cluster: Cluster): string {
  const spec: Record<string, unknown> = { interactive: false };
  if (exec['provideClusterInfo'] === true) {
    spec['cluster'] = {
      server: cluster.server,
      'certificate-authority-data': cluster.caData,
      'insecure-skip-tls-verify': cluster.skipTLSVerify,
      'tls-server-name': cluster.tlsServerName,
      'proxy-url': cluster.proxyUrl,
    };
  }
  const apiVersion = typeof exec['apiVersion'] === 'string' ? exec['apiVersion'] : 'client.authentication.k8s.io/v1';
  return JSON.stringify({ apiVersion, kind: 'ExecCredential', spec });
}

/** The exec section with its command resolved as kubectl resolves it (a path with a slash: against the kubeconfig's directory). */
function execOf(entry: KubeconfigEntry, cluster: Cluster): Record<string, unknown> | undefined {
  const exec = entry.body['exec'];
  if (exec === undefined || exec === null) return undefined;
  if (!isRecord(exec) || typeof exec['command'] !== 'string' || exec['command'] === '')
    throw new KubeConfigError(`${where(entry, 'user')}: exec needs a command`);
  const command = exec['command'].includes('/') ? resolve(entry.dir, exec['command']) : exec['command'];
  const listed: unknown = exec['env'];
  const env = (Array.isArray(listed) ? listed.filter(isRecord) : []).filter((item) => item['name'] !== 'KUBERNETES_EXEC_INFO');
  return { ...exec, command, env: [...env, { name: 'KUBERNETES_EXEC_INFO', value: execInfo(exec, cluster) }] };
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : typeof value === 'string' ? [value] : [];
}

/** Impersonation beyond the user, as kubectl sends it. */
function impersonationHeaders(entry: KubeconfigEntry | undefined): OutgoingHttpHeaders {
  if (entry === undefined) return {};
  const headers: OutgoingHttpHeaders = {};
  const groups = stringList(entry.body['as-groups']);
  if (groups.length > 0) headers['Impersonate-Group'] = groups;
  const uid = optionalString(entry, 'as-uid');
  if (uid !== undefined) headers['Impersonate-Uid'] = uid;
  const extra = entry.body['as-user-extra'];
  for (const [key, values] of Object.entries(isRecord(extra) ? extra : {})) headers[`Impersonate-Extra-${encodeURIComponent(key)}`] = stringList(values);
  return headers;
}

function userOf(entry: KubeconfigEntry | undefined, name: string, cluster: Cluster): User {
  if (entry === undefined) return { name };
  const tokenPath = optionalString(entry, 'tokenFile');
  const cert = fileOrData(entry, 'client-certificate');
  const key = fileOrData(entry, 'client-key');
  if ((cert === undefined) !== (key === undefined))
    throw new KubeConfigError(`${where(entry, 'user')}: a client certificate needs its key, and the other way round`);
  return {
    name,
    // A token file wins over a token, as in client-go.
    token: tokenPath === undefined ? optionalString(entry, 'token') : tokenFromFile(entry, tokenPath),
    certData: base64(cert),
    keyData: base64(key),
    exec: execOf(entry, cluster),
    authProvider: isRecord(entry.body['auth-provider']) ? entry.body['auth-provider'] : undefined,
    username: optionalString(entry, 'username'),
    password: optionalString(entry, 'password'),
    impersonateUser: optionalString(entry, 'as'),
  };
}

/** How the user authenticates, for messages. */
function method(user: User): string {
  if (user.token !== undefined) return 'a token';
  if (isRecord(user.exec)) return `exec plugin ${String(user.exec['command'])}`;
  if (isRecord(user.authProvider)) return `auth-provider ${String(user.authProvider['name'])}`;
  if (user.certData !== undefined) return 'a client certificate';
  if (user.username !== undefined) return 'basic auth';
  return 'no credentials';
}

/** The current context's cluster and user for client-node; throws KubeConfigError naming the file and field. */
export function clientNodeConfig(entries: CurrentEntries): ClientNodeConfig {
  const cluster = clusterOf(entries.cluster);
  const userName = entries.user?.name ?? (entries.userName === '' ? NO_USER : entries.userName);
  const user = userOf(entries.user, userName, cluster);
  const context: Context = { name: entries.context, cluster: cluster.name, user: userName };
  return {
    options: { clusters: [cluster], users: [user], contexts: [context], currentContext: entries.context },
    server: cluster.server,
    headers: impersonationHeaders(entries.user),
    identity: `context "${entries.context}", user "${entries.userName}" (${method(user)})`,
  };
}
