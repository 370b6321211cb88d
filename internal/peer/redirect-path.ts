// Redirects (issue 16): containerd's GET of a whole blob of at least
// `minBytes` that a peer holds is answered with a 307 to the holder's agent
// (a signed URL, internal/auth/redirect.ts) instead of being streamed through
// this agent. containerd follows redirects (Go's client, up to 10) and keeps
// the Range header; a redirect target that fails (refused, 5xx, 404) sends
// it to its next host, the upstream, as any failed mirror does. The bytes then
// go from the holder's file to containerd: one peer stream moved 220-390 MB/s
// through this agent's JavaScript against 1.0-4.3 GB/s for a blob served from
// the node's own files (256 MiB blob, 2 nodes on this machine, 2026-12-06).
//
// What the redirect gives up, and how it is bounded:
// - the agent's own digest check and its resume from another peer mid-blob:
//   containerd checks the digest at commit, and a body cut short makes it ask
//   this agent again with a Range, which is streamed (verified, resumable);
// - the stall timeout: a holder that stalls keeps containerd waiting until its
//   own progress timeout (CRI image_pull_progress_timeout, 5 m by default);
// - hedging between holders.
// So a blob is redirected once: asked again within REDIRECT_MEMORY_MS (the
// pull failed at commit, was cut, or timed out and is retried), it is
// streamed through this agent, verified, and the holder redirected to last
// time goes last. Smaller blobs, Range requests, HEADs and blobs still being
// fetched from the upstream are streamed as before.
import type { LocatedContent } from '../content/source.ts';
import { headBlob, repositoryPath } from './attempts.ts';
import { attemptAt, nothingToRelease, PEER_SOURCE, race, type DigestRequest, type PeerContext } from './context.ts';
import { rememberRedirect, type Redirects } from './redirects.ts';

/**
 * The blob as a redirect to the holder that answers a HEAD first, when it is
 * large enough; undefined when no candidate has it. `stream` locates it the
 * usual way (a small blob, or read() when the registry does not redirect).
 */
export async function locateForRedirect(
  ctx: PeerContext,
  redirects: Redirects,
  query: DigestRequest,
  stream: () => Promise<LocatedContent | undefined>,
): Promise<LocatedContent | undefined> {
  const { request, digest } = query;
  const winner = await race(ctx, {
    candidates: query.candidates,
    attempt: (candidate, signal) => headBlob(attemptAt(ctx, { ...request, method: 'HEAD' }, candidate, signal), digest),
    dispose: nothingToRelease,
  });
  if (winner === undefined) return undefined;
  const size = winner.value;
  if (size < redirects.settings.minBytes) return stream();
  const holder = winner.candidate;
  ctx.penalties.succeeded(holder.name);
  const target = redirects.settings.sign({ path: repositoryPath(request, 'blobs', digest), audience: holder.name });
  let fallback: LocatedContent | undefined;
  return {
    info: { digest, size },
    source: PEER_SOURCE,
    peer: holder.name,
    redirect: {
      location: `${holder.url}${target}`,
      taken: () => {
        ctx.counters.redirects++;
        rememberRedirect(redirects, digest, holder.name);
      },
    },
    // Not redirected after all (the registry decides): streamed the usual way.
    async read(range) {
      fallback ??= await stream();
      if (fallback === undefined) throw new Error(`no peer streams ${digest} any more`);
      return fallback.read(range);
    },
    release: () => fallback?.release?.(),
  };
}
