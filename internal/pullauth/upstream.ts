// The two questions the agent asks a private registry itself (issue 15), each
// one HEAD of the content containerd asked for:
//
// - without credentials: is this repository public (2xx or 404), or does the
//   registry want a Bearer token (401 with a challenge, which the agent then
//   hands containerd for the same repository)?
// - with containerd's Bearer token: does the registry let this token read
//   this repository? 2xx or 404 (the token was accepted; the content may not
//   exist upstream) is yes, 401 or 403 is no; anything else, or no answer in
//   time, is "unavailable", and the agent serves nothing.
//
// The token goes to the registry it was issued for and nowhere else; it is
// never logged. Redirects are not followed (a HEAD of a blob may redirect to
// storage; the registry's own answer already says whether access was given).
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { bearerChallenge, type BearerChallenge } from './challenge.ts';

export interface ProbeTarget {
  /** The registry's base URL, e.g. https://ghcr.io or http://127.0.0.1:5000. */
  readonly server: string;
  readonly repository: string;
  readonly kind: 'manifests' | 'blobs';
  /** A tag or a digest. */
  readonly reference: string;
}

export type Anonymous =
  { readonly kind: 'public' } | { readonly kind: 'challenge'; readonly challenge: BearerChallenge } | { readonly kind: 'unavailable'; readonly reason: string };

export type Verdict =
  | { readonly kind: 'allowed' }
  /** `challenge`: the registry's own 401 challenge for the refused token (with its `error`), when it sent one. */
  | { readonly kind: 'denied'; readonly status: number; readonly challenge?: BearerChallenge }
  | { readonly kind: 'unavailable'; readonly reason: string };

export interface UpstreamProbe {
  anonymous(target: ProbeTarget): Promise<Anonymous>;
  verify(target: ProbeTarget, token: string): Promise<Verdict>;
}

export interface UpstreamProbeOptions {
  /** Bound of one HEAD, connection and answer. */
  timeoutMs: number;
}

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

interface Answer {
  status: number;
  challenge: string | string[] | undefined;
}

function urlOf(target: ProbeTarget): URL {
  const base = new URL(target.server);
  const path = `/v2/${target.repository}/${target.kind}/${encodeURIComponent(target.reference)}`;
  return new URL(path, base);
}

function head(url: URL, headers: Record<string, string>, timeoutMs: number): Promise<Answer> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, { method: 'HEAD', headers: { accept: ACCEPT, 'user-agent': 'mirra-pull-access', ...headers } }, (res: IncomingMessage) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, challenge: res.headers['www-authenticate'] });
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('close', () => clearTimeout(timer));
    req.on('error', reject);
    req.end();
  });
}

const reached = (status: number): boolean => (status >= 200 && status < 300) || status === 404;

export function createUpstreamProbe(options: UpstreamProbeOptions): UpstreamProbe {
  return {
    async anonymous(target) {
      let answer: Answer;
      try {
        answer = await head(urlOf(target), {}, options.timeoutMs);
      } catch (err) {
        return { kind: 'unavailable', reason: (err as Error).message };
      }
      if (reached(answer.status)) return { kind: 'public' };
      const challenge = answer.status === 401 ? bearerChallenge(answer.challenge) : undefined;
      if (challenge !== undefined) return { kind: 'challenge', challenge };
      return { kind: 'unavailable', reason: `the registry answered ${answer.status}${answer.status === 401 ? ' without a Bearer challenge' : ''}` };
    },
    async verify(target, token) {
      let answer: Answer;
      try {
        answer = await head(urlOf(target), { authorization: `Bearer ${token}` }, options.timeoutMs);
      } catch (err) {
        return { kind: 'unavailable', reason: (err as Error).message };
      }
      if (reached(answer.status)) return { kind: 'allowed' };
      if (answer.status === 403) return { kind: 'denied', status: answer.status };
      if (answer.status === 401) {
        const challenge = bearerChallenge(answer.challenge);
        return challenge === undefined ? { kind: 'denied', status: 401 } : { kind: 'denied', status: 401, challenge };
      }
      return { kind: 'unavailable', reason: `the registry answered ${answer.status}` };
    },
  };
}
