// HTTP Range (RFC 9110 section 14) for blob GETs, and the ETag preconditions.
//
// Policy: one range only. `bytes=a-b`, `bytes=a-` and `bytes=-n` are served as
// 206 with Content-Range. A range that starts at or past the end (or a zero
// suffix, or any range of an empty blob) is 416 with `Content-Range: bytes */size`,
// and so is a reversed range (`bytes=5-3`). Multi-range requests, other units and
// malformed headers are ignored: the full content is sent with 200, as RFC 9110
// allows ("a server MAY ignore the Range header field"). containerd only ever
// sends single ranges (to resume a download).
import type { ByteRange } from '../oci/store.ts';

export type RangeDecision = { kind: 'full' } | { kind: 'partial'; range: ByteRange } | { kind: 'unsatisfiable' };

const SINGLE = /^bytes[ \t]*=[ \t]*(\d*)[ \t]*-[ \t]*(\d*)[ \t]*$/i;

function toNumber(digits: string): number | undefined {
  if (digits === '') return undefined;
  const value = Number(digits);
  return Number.isSafeInteger(value) ? value : Number.MAX_SAFE_INTEGER;
}

/** Decides how to answer a Range header for content of `sizeBytes` bytes. */
export function parseRange(header: string | undefined, sizeBytes: number): RangeDecision {
  if (header === undefined) return { kind: 'full' };
  const match = SINGLE.exec(header);
  if (match === null) return { kind: 'full' };
  const first = toNumber(match[1] ?? '');
  const last = toNumber(match[2] ?? '');
  if (first === undefined) {
    if (last === undefined) return { kind: 'full' };
    // Suffix range: the last `last` bytes.
    if (last === 0 || sizeBytes === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', range: { start: Math.max(0, sizeBytes - last), end: sizeBytes - 1 } };
  }
  if (last !== undefined && last < first) return { kind: 'unsatisfiable' };
  if (first >= sizeBytes) return { kind: 'unsatisfiable' };
  const end = last === undefined ? sizeBytes - 1 : Math.min(last, sizeBytes - 1);
  return { kind: 'partial', range: { start: first, end } };
}

export function contentRange(range: ByteRange, sizeBytes: number): string {
  return `bytes ${range.start}-${range.end}/${sizeBytes}`;
}

export function unsatisfiedRange(sizeBytes: number): string {
  return `bytes */${sizeBytes}`;
}

/** The strong ETag of content-addressed data: its quoted digest. */
export function etagOf(digest: string): string {
  return `"${digest}"`;
}

function stripWeak(tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag;
}

/** If-None-Match (weak comparison, RFC 9110 13.1.2): true when the client's copy is current. */
export function noneMatchHit(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const trimmed = header.trim();
  if (trimmed === '*') return true;
  for (const part of trimmed.split(',')) {
    if (stripWeak(part.trim()) === etag) return true;
  }
  return false;
}

/** If-Range: a range is honoured only when the validator is our (strong) ETag. */
export function ifRangeAllows(header: string | undefined, etag: string): boolean {
  return header === undefined || header.trim() === etag;
}
