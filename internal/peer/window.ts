// A byte range of a blob that is read whole from a peer and verified. A peer's
// ranged answer cannot be checked against the digest, and containerd asks
// for a Range when it resumes a download it kept: wrong bytes there would
// complete a wrong blob in its ingest. So a range is cut out of the whole,
// verified stream: bytes before `start` are read (and hashed) and dropped,
// bytes after `end` likewise, and the window's last chunk is held back until
// the whole stream has ended, i.e. passed its digest check. On a failure the
// window never looks complete; before any of its bytes went out, the failure
// is a NotFoundError (the registry answers 404, containerd goes elsewhere).
import { Transform, type Readable } from 'node:stream';
import { failureOf } from './resume.ts';

/** Bytes `start`..`end` (inclusive) of `whole`, which delivers the blob from byte 0. */
export function windowOf(whole: Readable, digest: string, start: number, end: number): Readable {
  let offset = 0;
  let held: Buffer | undefined;
  let deliveredAny = false;
  const window = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const chunkStart = offset;
      offset += chunk.length;
      // The part of the chunk inside the window, relative to the chunk.
      const from = Math.max(start, chunkStart) - chunkStart;
      const to = Math.min(end + 1, offset) - chunkStart;
      if (to > from) {
        if (held !== undefined) {
          deliveredAny = true;
          this.push(held);
        }
        held = chunk.subarray(from, to);
      }
      callback();
    },
    flush(callback) {
      if (offset <= end) {
        callback(new Error(`blob ended at byte ${offset}, before the end of the range ${end}`));
        return;
      }
      if (held !== undefined) this.push(held);
      held = undefined;
      callback();
    },
  });
  whole.once('error', (err) => {
    held = undefined;
    window.destroy(failureOf(err, digest, deliveredAny));
  });
  // The client went away, or the window is done: the whole stream is let go.
  window.once('close', () => whole.destroy());
  whole.pipe(window);
  return window;
}
