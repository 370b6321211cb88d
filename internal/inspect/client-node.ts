// The API transport of `mirra shards` and `mirra locate` over a kubeconfig:
// @kubernetes/client-node authenticates each request (exec plugins, OIDC and
// the other auth providers, client certificates, tokens, basic auth,
// impersonation) and gives the agent it goes through (its TLS settings,
// proxy-url); the project's client (internal/kube/client.ts) sends it and
// reads the answer, so the commands see the same answers and errors as with
// the agent's own client.
//
// client-node is loaded here only, with import(), when a command reads a
// kubeconfig: the agent never loads it (it cost about 50 MiB of resident
// memory per node), and the agent's bundle leaves it out (hack/build.ts: the
// image has no node_modules). Without the package, the commands say so in
// one line; in a pod they need no kubeconfig and do without it.
import { Agent as HttpAgent, type OutgoingHttpHeaders } from 'node:http';
import type { RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { errorMessage } from '../errors/message.ts';
import type { ApiTransport, RequestAccess } from '../kube/client.ts';
import type { ClientNodeConfig } from './client-node-config.ts';

const PACKAGE = '@kubernetes/client-node';
/** How long getting the credentials of one request may take (client-node runs an exec plugin without a timeout). */
const CREDENTIALS_TIMEOUT_MS = 30_000;

/** client-node cannot be loaded (not installed, as in the agent's image); the message is one line naming the fix. */
export class ClientNodeMissingError extends Error {
  override readonly name = 'ClientNodeMissingError';
}

function isMissingPackage(err: unknown): boolean {
  return err instanceof Error && 'code' in err && err.code === 'ERR_MODULE_NOT_FOUND' && err.message.includes(`'${PACKAGE}'`);
}

/** client-node's KubeConfig class, loaded on first use; throws ClientNodeMissingError. */
async function loadKubeConfigClass(): Promise<typeof KubeConfig> {
  try {
    return (await import('@kubernetes/client-node')).KubeConfig;
  } catch (err) {
    const why = isMissingPackage(err)
      ? 'is not installed here (the agent image leaves it out)'
      : `cannot be loaded (${errorMessage(err).split('\n')[0] ?? ''})`;
    throw new ClientNodeMissingError(
      `reading a kubeconfig needs the ${PACKAGE} package, which ${why}: run mirra with Node 24 where "npm install" put its dependencies, or in a pod without a kubeconfig (the pod's service account)`,
    );
  }
}

/** A client-node KubeConfig of `config`; throws ClientNodeMissingError. */
export async function clientNodeKubeConfig(config: ClientNodeConfig): Promise<KubeConfig> {
  const kc = new (await loadKubeConfigClass())();
  kc.loadFromOptions(config.options);
  return kc;
}

/** The first line that says something: client-node's errors carry a plugin's whole stderr. */
function firstLine(message: string): string {
  return (
    message
      .split('\n')
      .map((line) => line.trim())
      .find((line) => line !== '') ?? 'no reason given'
  );
}

/** Rejects after `ms` unless `work` settled; the timer does not keep the process alive. */
function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${ms / 1000} s`)), ms);
    timer.unref();
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** Node's raw [name, value, ...] form of headers, which client-node never writes (it sets an object). */
function isHeaderList(headers: OutgoingHttpHeaders | readonly string[]): headers is readonly string[] {
  return Array.isArray(headers);
}

/** The agent and headers client-node gives a request (ca, certificates, proxy in the agent; Authorization and Impersonate-User in the headers). */
async function clientNodeAccess(kc: KubeConfig, config: ClientNodeConfig): Promise<RequestAccess> {
  const opts: RequestOptions = {};
  try {
    await within(kc.applyToHTTPSOptions(opts), CREDENTIALS_TIMEOUT_MS, 'getting the credentials');
  } catch (err) {
    throw new Error(`cannot get the credentials of ${config.identity}: ${firstLine(errorMessage(err))}`, { cause: err });
  }
  if (!(opts.agent instanceof HttpAgent)) throw new Error(`${PACKAGE} gave no HTTP agent for ${config.server}`);
  const given = opts.headers === undefined || isHeaderList(opts.headers) ? {} : opts.headers;
  const headers: OutgoingHttpHeaders = { ...config.headers, ...given };
  if (typeof opts.auth === 'string') headers['Authorization'] = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
  return { agent: opts.agent, headers };
}

/** The transport of a kubeconfig through client-node (its agent is created once per cluster and user, and reused). */
export function clientNodeTransport(kc: KubeConfig, config: ClientNodeConfig): ApiTransport {
  let agent: HttpAgent | undefined;
  return {
    server: config.server,
    async access() {
      const access = await clientNodeAccess(kc, config);
      agent = access.agent;
      return access;
    },
    // client-node keeps an exec plugin's token until its expirationTimestamp and an OIDC token until it expires: nothing to drop.
    unauthorized: () => {},
    close: () => agent?.destroy(),
  };
}
