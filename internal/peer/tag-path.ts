// The tag path of the peer source (source.ts), when resolveTags is on: a HEAD
// by tag on the peers that claim the reference (`registry/name:tag`) gives
// the digest; the manifest is then located by digest (manifest-path.ts).
// Many HEADs of one tag at once (a rollout) make one race, not one each.
import { imageReference } from '../oci/reference.ts';
import type { ContentRequest, ResolvedTag } from '../content/source.ts';
import { headTag } from './attempts.ts';
import { attemptAt, candidatesFor, nothingToRelease, PEER_SOURCE, race, type PeerContext } from './context.ts';

/** The digest `tag` points to, from the first candidate that has the tag. */
export function resolveTagOnPeers(ctx: PeerContext, request: ContentRequest, tag: string): Promise<ResolvedTag | undefined> {
  const reference = imageReference(request.registry, request.name, tag);
  // Many HEADs of one tag at once (a rollout) make one race, not one each.
  return ctx.tagFlight.run(reference, async () => {
    const candidates = await candidatesFor(ctx, reference);
    if (candidates.length === 0) return undefined;
    const winner = await race(ctx, {
      candidates,
      attempt: (candidate, signal) => headTag(attemptAt(ctx, request, candidate, signal), tag),
      dispose: nothingToRelease,
    });
    if (winner === undefined) return undefined;
    ctx.penalties.succeeded(winner.candidate.name);
    return { digest: winner.value.digest, source: PEER_SOURCE, peer: winner.candidate.name };
  });
}
