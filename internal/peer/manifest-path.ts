// The manifest path of the peer source (source.ts): a manifest by digest is
// fetched whole (capped at maxManifestBytes), verified against its digest
// and served from memory. Concurrent requests for one manifest (the HEADs of
// a tag during a rollout) share one fetch. A peer whose manifest does not
// match is distrusted for that digest (penalty.ts).
import { Readable } from 'node:stream';
import { isAnyManifestMediaType, sniffManifestMediaType } from '../oci/mediatype.ts';
import type { BlobInfo } from '../oci/store.ts';
import type { LocatedContent } from '../content/source.ts';
import { getManifest, type ManifestCheck } from './attempts.ts';
import { attemptAt, nothingToRelease, PEER_SOURCE, race, type DigestRequest, type PeerContext, type PeerManifest } from './context.ts';

/** A manifest by digest from the candidates, verified, served from memory. */
export async function locateManifest(ctx: PeerContext, query: DigestRequest): Promise<LocatedContent | undefined> {
  const { request, digest } = query;
  // Concurrent requests for one manifest (the HEADs of a tag during a rollout) share one fetch of the verified body.
  const fetched = await ctx.manifestFlight.run(`${request.registry}/${request.name}@${digest}`, () => fetchManifest(ctx, query));
  if (fetched === undefined) return undefined;
  const { body, mediaType, peer } = fetched;
  const info: BlobInfo = { digest, size: body.length };
  // The verified body says what it is; the peer's Content-Type only when the body does not.
  const declared = sniffManifestMediaType(body) ?? (mediaType !== undefined && isAnyManifestMediaType(mediaType) ? mediaType : undefined);
  if (declared !== undefined) info.mediaType = declared;
  return {
    info,
    source: PEER_SOURCE,
    peer,
    read: async (range) => Readable.from([range === undefined ? body : body.subarray(range.start, range.end + 1)]),
  };
}

/** The manifest from the first candidate whose body matches the digest. */
async function fetchManifest(ctx: PeerContext, query: DigestRequest): Promise<PeerManifest | undefined> {
  const { request, digest, parsed } = query;
  const check: ManifestCheck = {
    maxManifestBytes: ctx.maxManifestBytes,
    onMismatch: (peer) => {
      ctx.counters.digestMismatches++;
      ctx.log.warn({ digest, peer: peer.name }, 'peer sent a manifest that does not match the digest');
      ctx.penalties.distrust(peer.name, digest);
    },
  };
  const winner = await race(ctx, {
    candidates: query.candidates,
    attempt: (candidate, signal) => getManifest(attemptAt(ctx, request, candidate, signal), parsed, check),
    dispose: nothingToRelease,
  });
  if (winner === undefined) return undefined;
  ctx.penalties.succeeded(winner.candidate.name);
  return { ...winner.value, peer: winner.candidate.name };
}
