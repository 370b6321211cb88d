// Reads kubeconfig files (YAML or JSON) as kubectl does, for what mirra uses:
// the current context's cluster (server, CA, TLS options), user (token,
// tokenFile, client certificate, exec plugin) and namespace. Several files
// merge as with KUBECONFIG: the first file to name an entry wins, and relative
// paths are resolved against the file that holds them. Anything the agent
// cannot do (auth-provider, basic auth, proxy-url) is an error naming the
// field. `mirra shards` and `mirra locate` take the merged entries of the
// current context (currentEntries) and hand them to @kubernetes/client-node,
// which does those (internal/inspect/client-node-config.ts).
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { load } from 'js-yaml';
import { errorMessage } from '../errors/message.ts';

export interface KubeCluster {
  readonly server: string;
  /** PEM of the CA bundle; undefined: the system's CAs. */
  readonly ca: Buffer | undefined;
  readonly insecureSkipTlsVerify: boolean;
  readonly tlsServerName: string | undefined;
}

export interface ExecPlugin {
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** client.authentication.k8s.io/v1 or v1beta1. */
  readonly apiVersion: string;
  /** The kubeconfig's directory: a command with a slash is relative to it, as in kubectl. */
  readonly dir: string;
}

export interface KubeUser {
  readonly token: string | undefined;
  readonly tokenFile: string | undefined;
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
  readonly exec: ExecPlugin | undefined;
}

export interface ResolvedKubeconfig {
  readonly context: string;
  readonly cluster: KubeCluster;
  readonly user: KubeUser;
  readonly namespace: string | undefined;
}

/** One line naming the file and field that cannot be used. */
export class KubeConfigError extends Error {
  override name = 'KubeConfigError';
}

type Obj = Record<string, unknown>;

/** One named cluster, user or context, as the first file to name it wrote it. */
export interface KubeconfigEntry {
  readonly name: string;
  /** The entry's `cluster`, `user` or `context` mapping, unchecked. */
  readonly body: Readonly<Record<string, unknown>>;
  /** The directory of the file that defined the entry: its relative paths are relative to it. */
  readonly dir: string;
  readonly file: string;
}

type Entry = KubeconfigEntry;

/** The current context's entries after merging, before any field but the context's is read. */
export interface CurrentEntries {
  readonly context: string;
  readonly cluster: KubeconfigEntry;
  /** The context's user; undefined when it names none, or one no file defines (kubectl then sends no credentials). */
  readonly user: KubeconfigEntry | undefined;
  readonly userName: string;
  readonly namespace: string | undefined;
}

interface Merged {
  clusters: Map<string, Entry>;
  users: Map<string, Entry>;
  contexts: Map<string, Entry>;
  currentContext: string;
}

const EXEC_API_VERSIONS = ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1'];

function isObj(value: unknown): value is Obj {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A string field of the entry; undefined when absent or empty; throws KubeConfigError when it is not a string. */
export function optionalString(entry: Entry, field: string): string | undefined {
  const value = entry.body[field];
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw new KubeConfigError(`${entry.file}: ${field} must be a string`);
  return value;
}

/** `<field>-data` (base64) or `<field>` (a path, relative to the kubeconfig), as bytes. */
export function fileOrData(entry: Entry, field: string): Buffer | undefined {
  const data = optionalString(entry, `${field}-data`);
  if (data !== undefined) return Buffer.from(data, 'base64');
  const path = optionalString(entry, field);
  if (path === undefined) return undefined;
  try {
    return readFileSync(resolve(entry.dir, path));
  } catch (err) {
    throw new KubeConfigError(`${entry.file}: ${field} ${path}: ${errorMessage(err)}`);
  }
}

/** Adds the named entries of one list (clusters, users, contexts) that earlier files did not define. */
function mergeList(into: Map<string, Entry>, list: unknown, inner: string, file: string): void {
  if (list === undefined || list === null) return;
  if (!Array.isArray(list)) throw new KubeConfigError(`${file}: ${inner}s must be a list`);
  for (const item of list) {
    if (!isObj(item) || typeof item['name'] !== 'string') throw new KubeConfigError(`${file}: every entry of ${inner}s needs a name`);
    const body = item[inner] ?? {};
    if (!isObj(body)) throw new KubeConfigError(`${file}: ${inner} ${item['name']} must be a mapping`);
    if (!into.has(item['name'])) into.set(item['name'], { name: item['name'], body, dir: dirname(file), file });
  }
}

function readFile(path: string, merged: Merged): void {
  let doc: unknown;
  try {
    doc = load(readFileSync(path, 'utf8'));
  } catch (err) {
    const message = errorMessage(err);
    throw new KubeConfigError(`cannot load ${path}: ${message.split('\n')[0] ?? message}`);
  }
  if (doc === undefined || doc === null) return; // an empty file adds nothing, as in kubectl
  if (!isObj(doc)) throw new KubeConfigError(`cannot load ${path}: not a kubeconfig (expected a mapping)`);
  mergeList(merged.clusters, doc['clusters'], 'cluster', path);
  mergeList(merged.users, doc['users'], 'user', path);
  mergeList(merged.contexts, doc['contexts'], 'context', path);
  const current = doc['current-context'];
  if (merged.currentContext === '' && typeof current === 'string') merged.currentContext = current;
}

function clusterOf(entry: Entry, name: string): KubeCluster {
  const server = optionalString(entry, 'server');
  if (server === undefined) throw new KubeConfigError(`${entry.file}: cluster ${name} has no server`);
  if (optionalString(entry, 'proxy-url') !== undefined) throw new KubeConfigError(`${entry.file}: cluster ${name}: proxy-url is not supported`);
  const insecure = entry.body['insecure-skip-tls-verify'] === true;
  if (server.startsWith('http:') && !insecure) {
    throw new KubeConfigError(`${entry.file}: plain http server ${server} needs insecure-skip-tls-verify: true`);
  }
  return { server, ca: fileOrData(entry, 'certificate-authority'), insecureSkipTlsVerify: insecure, tlsServerName: optionalString(entry, 'tls-server-name') };
}

function execOf(entry: Entry, name: string): ExecPlugin | undefined {
  const exec = entry.body['exec'];
  if (exec === undefined || exec === null) return undefined;
  const where = `${entry.file}: user ${name}: exec`;
  if (!isObj(exec) || typeof exec['command'] !== 'string' || exec['command'] === '') throw new KubeConfigError(`${where} needs a command`);
  const apiVersion = typeof exec['apiVersion'] === 'string' ? exec['apiVersion'] : '';
  if (!EXEC_API_VERSIONS.includes(apiVersion)) throw new KubeConfigError(`${where}: apiVersion must be one of ${EXEC_API_VERSIONS.join(', ')}`);
  if (exec['interactiveMode'] === 'Always') throw new KubeConfigError(`${where}: interactiveMode Always needs a terminal, which mirra never has`);
  const args = exec['args'] ?? [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) throw new KubeConfigError(`${where}: args must be a list of strings`);
  const env: Record<string, string> = {};
  for (const item of Array.isArray(exec['env']) ? exec['env'] : []) {
    if (!isObj(item) || typeof item['name'] !== 'string' || typeof item['value'] !== 'string')
      throw new KubeConfigError(`${where}: env entries need a name and a value`);
    env[item['name']] = item['value'];
  }
  return { command: exec['command'], args, env, apiVersion, dir: entry.dir };
}

function userOf(entry: Entry | undefined, name: string): KubeUser {
  if (entry === undefined) return { token: undefined, tokenFile: undefined, cert: undefined, key: undefined, exec: undefined };
  for (const field of ['auth-provider', 'username', 'password']) {
    if (entry.body[field] !== undefined)
      throw new KubeConfigError(`${entry.file}: user ${name}: ${field} is not supported (use a token, a client certificate or exec)`);
  }
  const tokenPath = optionalString(entry, 'tokenFile');
  const cert = fileOrData(entry, 'client-certificate');
  const key = fileOrData(entry, 'client-key');
  if ((cert === undefined) !== (key === undefined))
    throw new KubeConfigError(`${entry.file}: user ${name}: a client certificate needs its key, and the other way round`);
  return { token: optionalString(entry, 'token'), tokenFile: tokenPath && resolve(entry.dir, tokenPath), cert, key, exec: execOf(entry, name) };
}

/**
 * Reads and merges the files as kubectl does (the first file to name a
 * cluster, user or context wins; the first current-context wins), then picks
 * the entries of the current context (or `context`).
 */
export function currentEntries(paths: readonly string[], context?: string): CurrentEntries {
  const merged: Merged = { clusters: new Map(), users: new Map(), contexts: new Map(), currentContext: '' };
  for (const path of paths) readFile(path, merged);
  const contextName = context === undefined || context === '' ? merged.currentContext : context;
  const where = paths.join(', ');
  if (contextName === '') throw new KubeConfigError(`${where}: no current cluster (current-context is not set)`);
  const ctx = merged.contexts.get(contextName);
  if (ctx === undefined) throw new KubeConfigError(`${where}: no current cluster (context ${contextName} is not defined)`);
  const clusterName = optionalString(ctx, 'cluster') ?? '';
  const cluster = merged.clusters.get(clusterName);
  if (cluster === undefined)
    throw new KubeConfigError(`${ctx.file}: no current cluster (context ${contextName} names cluster "${clusterName}", which is not defined)`);
  const userName = optionalString(ctx, 'user') ?? '';
  return { context: contextName, cluster, user: merged.users.get(userName), userName, namespace: optionalString(ctx, 'namespace') };
}

/** Reads and merges the files, then resolves the current context (or `context`) for the agent's own client. */
export function readKubeconfig(paths: readonly string[], context?: string): ResolvedKubeconfig {
  const entries = currentEntries(paths, context);
  return {
    context: entries.context,
    cluster: clusterOf(entries.cluster, entries.cluster.name),
    user: userOf(entries.user, entries.userName),
    namespace: entries.namespace,
  };
}
