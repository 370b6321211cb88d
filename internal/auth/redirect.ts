// Signed redirects (issue 16): an agent answers containerd's GET of a large
// blob that a peer holds with a 307 to that peer's agent, so the bytes go from
// the holder straight to the pulling node's containerd and the pulling agent
// moves none of them. containerd cannot sign a request, so the URL carries
// the signature, as object stores' presigned URLs do:
//
//   /v2/<name>/blobs/<digest>?ns=<registry>[&mirra-verified=1]
//     &mirra-from=<asking agent>&mirra-expires=<ms since the epoch>&mirra-sig=<hex>
//
// mirra-sig is the HMAC-SHA256, with the peer key, of "mirra-redirect-v1",
// the request target up to `&mirra-sig=` (path, registry, the pull-access
// assertion, sender, expiry) and the receiver's pod name, so a URL is good for
// one blob at one agent until it expires (60 s at most). It may be used more
// than once in that time (containerd retries and resumes); it only ever
// opens the holder's own copy of that blob, which the sender could have
// asked for itself. The holder treats a verified redirect as a peer request
// (from the node's own content only, never passed on).
import { createHmac, timingSafeEqual } from 'node:crypto';

export const REDIRECT_FROM_PARAM = 'mirra-from';
export const REDIRECT_EXPIRES_PARAM = 'mirra-expires';
export const REDIRECT_SIGNATURE_PARAM = 'mirra-sig';
const SIGNATURE_MARK = `&${REDIRECT_SIGNATURE_PARAM}=`;
const SCHEME = 'mirra-redirect-v1';
/** A redirect is good for this long: containerd follows it at once, and a resume asks the sender again. */
export const REDIRECT_TTL_MS = 60_000;

const EXPIRES = /^[0-9]{1,15}$/;
const SIGNATURE = /^[0-9a-f]{64}$/;

function redirectSignature(key: Buffer, signedPart: string, audience: string): Buffer {
  if (signedPart.includes('\n') || audience.includes('\n')) throw new Error('a signed field contains a newline');
  return createHmac('sha256', key).update(`${SCHEME}\n${signedPart}\n${audience}`).digest();
}

export interface RedirectToSign {
  /** The request target at the holder: path and query (with `?`), without the redirect parameters. */
  path: string;
  /** The holder's pod name. */
  audience: string;
}

/** Returns the request target with the redirect parameters and signature appended. */
export type RedirectSigner = (request: RedirectToSign) => string;

export function createRedirectSigner(options: { key: Buffer; self: string; nowMs?: () => number }): RedirectSigner {
  const nowMs = options.nowMs ?? Date.now;
  return ({ path, audience }) => {
    if (!path.includes('?')) throw new Error('a redirect target needs a query (the ns parameter)');
    const expires = Math.floor(nowMs()) + REDIRECT_TTL_MS;
    const signedPart = `${path}&${REDIRECT_FROM_PARAM}=${encodeURIComponent(options.self)}&${REDIRECT_EXPIRES_PARAM}=${expires}`;
    return `${signedPart}${SIGNATURE_MARK}${redirectSignature(options.key, signedPart, audience).toString('hex')}`;
  };
}

/** True when the request target carries a redirect signature (it must then verify). */
export function hasRedirectSignature(url: string): boolean {
  return url.includes(SIGNATURE_MARK);
}

export type RedirectVerdict = { ok: true; peer: string } | { ok: false; reason: 'malformed' | 'expired' | 'bad signature' };

export interface RedirectVerifier {
  verify(url: string): RedirectVerdict;
}

/** Verifies redirect targets made for this agent (`audience`) with one of `keys`. */
export function createRedirectVerifier(options: { keys: readonly Buffer[]; audience: string; nowMs?: () => number }): RedirectVerifier {
  if (options.keys.length === 0) throw new Error('a redirect verifier needs at least one key');
  const nowMs = options.nowMs ?? Date.now;
  return {
    verify(url) {
      const at = url.lastIndexOf(SIGNATURE_MARK);
      const query = url.indexOf('?');
      if (at < 0 || query < 0 || query > at) return { ok: false, reason: 'malformed' };
      const signedPart = url.slice(0, at);
      const signature = url.slice(at + SIGNATURE_MARK.length);
      const params = new URLSearchParams(signedPart.slice(query + 1));
      const peer = params.getAll(REDIRECT_FROM_PARAM);
      const expires = params.getAll(REDIRECT_EXPIRES_PARAM);
      if (!SIGNATURE.test(signature) || peer.length !== 1 || expires.length !== 1 || !EXPIRES.test(expires[0] ?? '')) {
        return { ok: false, reason: 'malformed' };
      }
      const expiresMs = Number(expires[0]);
      const now = nowMs();
      if (expiresMs < now || expiresMs > now + REDIRECT_TTL_MS + 5_000) return { ok: false, reason: 'expired' };
      const given = Buffer.from(signature, 'hex');
      let good = false;
      // Every key is tried (no early exit), each comparison in constant time.
      for (const key of options.keys) good = timingSafeEqual(redirectSignature(key, signedPart, options.audience), given) || good;
      return good ? { ok: true, peer: peer[0] ?? '' } : { ok: false, reason: 'bad signature' };
    },
  };
}
