// Dropping containerd's ingest of a blob that received wrong bytes.
//
// containerd keeps what it wrote of a blob whose download broke off (its
// ingest, named e.g. `layer-sha256:<hex>`) and resumes from it with a Range,
// in the same pull and in the next one. When the agent streamed a blob from a
// peer and found at the end that the bytes were wrong (blobs too big to hold
// back until checked), the ingest holds wrong bytes: completed from any
// source, it fails containerd's digest check on commit, and stays, so that
// every later pull of the blob fails the same way. Aborting the ingest makes
// the next attempt start the blob over, from a good source.
import type { Logger } from '../log/logger.ts';
import type { IngestControl } from './client.ts';
import type { IngestStatus } from './messages.ts';

/** Whether the ingest is writing `digest` (its expected digest, or the digest its ref ends with). */
export function isIngestOf(status: IngestStatus, digest: string): boolean {
  return status.expected === digest || status.ref.endsWith(`-${digest}`) || status.ref === digest;
}

/** Aborts every ingest of `digest` in the client's namespace; returns the refs aborted. Never rejects. */
export async function abortIngestsOf(client: IngestControl, digest: string, log: Logger): Promise<string[]> {
  try {
    const refs = (await client.listIngests()).filter((status) => isIngestOf(status, digest)).map((status) => status.ref);
    for (const ref of refs) await client.abortIngest(ref);
    if (refs.length > 0) log.info({ digest, refs }, "aborted containerd's ingest of a blob that got wrong bytes: the next pull starts it over");
    return refs;
  } catch (err) {
    log.warn({ err, digest }, "cannot abort containerd's ingest of a blob that got wrong bytes");
    return [];
  }
}
