// Where the bearer token of each API request comes from: a fixed token, a
// token file re-read every minute (service account tokens are bound and
// rotate; client-go re-reads them as often), or an exec credential plugin
// (client.authentication.k8s.io ExecCredential), cached until it expires.
// A 401 drops the cached token, so the next request reads a fresh one.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { ExecPlugin } from './kubeconfig.ts';
import { errorMessage } from '../errors/message.ts';

export interface Credentials {
  /** The Authorization header value, or undefined for none (client certificates, or no auth). */
  authorization(): Promise<string | undefined>;
  /** The API said 401: the next authorization() fetches a fresh token. */
  invalidate(): void;
}

const TOKEN_FILE_REFRESH_MS = 60_000;
const EXEC_TIMEOUT_MS = 30_000;
const EXEC_MAX_OUTPUT_BYTES = 1024 * 1024;
/** A token from a plugin is refreshed this long before its expirationTimestamp. */
const EXEC_EXPIRY_MARGIN_MS = 10_000;

export const noCredentials: Credentials = { authorization: async () => undefined, invalidate: () => {} };

export function staticToken(token: string): Credentials {
  return { authorization: async () => `Bearer ${token}`, invalidate: () => {} };
}

/**
 * A cache of one token: `fetch` runs again when the token is older than its
 * validity or was invalidated; concurrent callers share one fetch.
 */
function cachedToken(fetch: () => Promise<{ token: string; validUntil: number }>, now: () => number): Credentials {
  let cached: { token: string; validUntil: number } | undefined;
  let pending: Promise<string> | undefined;
  return {
    async authorization() {
      if (cached !== undefined && now() < cached.validUntil) return `Bearer ${cached.token}`;
      pending ??= fetch()
        .then((fresh) => {
          cached = fresh;
          return fresh.token;
        })
        .finally(() => (pending = undefined));
      return `Bearer ${await pending}`;
    },
    invalidate() {
      cached = undefined;
    },
  };
}

export function tokenFile(path: string, now: () => number = Date.now): Credentials {
  return cachedToken(async () => {
    let token: string;
    try {
      token = (await readFile(path, 'utf8')).trim();
    } catch (err) {
      throw new Error(`cannot read the token file ${path}: ${errorMessage(err)}`, { cause: err });
    }
    if (token === '') throw new Error(`the token file ${path} is empty`);
    return { token, validUntil: now() + TOKEN_FILE_REFRESH_MS };
  }, now);
}

function runPlugin(plugin: ExecPlugin): Promise<string> {
  const command = plugin.command.includes('/') ? resolve(plugin.dir, plugin.command) : plugin.command;
  const info = { apiVersion: plugin.apiVersion, kind: 'ExecCredential', spec: { interactive: false } };
  const env = { ...process.env, ...plugin.env, KUBERNETES_EXEC_INFO: JSON.stringify(info) };
  return new Promise((done, fail) => {
    execFile(command, [...plugin.args], { env, timeout: EXEC_TIMEOUT_MS, maxBuffer: EXEC_MAX_OUTPUT_BYTES }, (err, stdout, stderr) => {
      if (err === null) return done(stdout);
      const detail = stderr.trim().split('\n')[0] || err.message.split('\n')[0];
      fail(new Error(`the exec credential plugin ${plugin.command} failed: ${detail}`));
    });
  });
}

/** The token and its expiry from the plugin's ExecCredential output. */
export function parseExecCredential(stdout: string, command: string): { token: string; validUntil: number } {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    throw new Error(`the exec credential plugin ${command} printed no JSON ExecCredential`);
  }
  const status = doc !== null && typeof doc === 'object' && 'status' in doc ? doc.status : undefined;
  if (status === null || typeof status !== 'object') throw new Error(`the exec credential plugin ${command} printed no status`);
  if ('clientCertificateData' in status && !('token' in status)) {
    throw new Error(`the exec credential plugin ${command} returned a client certificate: mirra supports tokens from plugins only`);
  }
  const token = 'token' in status && typeof status.token === 'string' ? status.token : '';
  if (token === '') throw new Error(`the exec credential plugin ${command} returned no token`);
  const expiry = 'expirationTimestamp' in status && typeof status.expirationTimestamp === 'string' ? Date.parse(status.expirationTimestamp) : NaN;
  return { token, validUntil: Number.isFinite(expiry) ? expiry - EXEC_EXPIRY_MARGIN_MS : Number.POSITIVE_INFINITY };
}

export function execCredentials(plugin: ExecPlugin, now: () => number = Date.now): Credentials {
  return cachedToken(async () => parseExecCredential(await runPlugin(plugin), plugin.command), now);
}
