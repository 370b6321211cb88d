// The redirects of one peer source (redirect-path.ts says what they are and
// why): the settings, and the digests redirected lately, so that a blob asked
// for again soon after its redirect (a failed, cut or retried pull) is
// streamed through the agent instead, verified.
import type { RedirectSigner } from '../auth/redirect.ts';

/** A blob asked for again within this long after its redirect is streamed instead. */
export const REDIRECT_MEMORY_MS = 60_000;
/** Digests remembered at most (one node's containerd pulls far fewer blobs than this within a minute). */
const MAX_REMEMBERED = 4096;

export interface RedirectSettings {
  /** Blobs of at least this many bytes are redirected. */
  minBytes: number;
  sign: RedirectSigner;
}

/** The redirects of one source: its settings, and the digests redirected lately, with the holder and until when (ms since the epoch). */
export interface Redirects {
  readonly settings: RedirectSettings;
  readonly recent: Map<string, { peer: string; untilMs: number }>;
  nowMs(): number;
}

export function createRedirects(settings: RedirectSettings, nowMs: () => number = Date.now): Redirects {
  return { settings, recent: new Map(), nowMs };
}

/** True when `digest` was redirected within REDIRECT_MEMORY_MS: this ask is a retry or a resume. */
export function redirectedLately(redirects: Redirects, digest: string): { peer: string } | undefined {
  const entry = redirects.recent.get(digest);
  if (entry === undefined) return undefined;
  if (entry.untilMs < redirects.nowMs()) {
    redirects.recent.delete(digest);
    return undefined;
  }
  return entry;
}

export function rememberRedirect(redirects: Redirects, digest: string, peer: string): void {
  const now = redirects.nowMs();
  redirects.recent.delete(digest);
  redirects.recent.set(digest, { peer, untilMs: now + REDIRECT_MEMORY_MS });
  if (redirects.recent.size <= MAX_REMEMBERED) return;
  // Oldest first (insertion order): drop the expired, then the oldest.
  for (const [key, entry] of redirects.recent) {
    if (redirects.recent.size <= MAX_REMEMBERED && entry.untilMs >= now) break;
    redirects.recent.delete(key);
  }
}
