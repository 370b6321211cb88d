// Digest validation. A digest is checked here before it is ever used as part
// of a path, a map key or an upstream URL (as containerd's content store does).
import { createHash } from 'node:crypto';

const ALGORITHMS: Record<string, number> = {
  sha256: 64,
  sha512: 128,
};

export interface ParsedDigest {
  algorithm: 'sha256' | 'sha512';
  hex: string;
}

/** Parses `algorithm:hex`; returns undefined for anything that is not a supported, well-formed digest. */
export function parseDigest(value: string): ParsedDigest | undefined {
  const colon = value.indexOf(':');
  if (colon <= 0) return undefined;
  const algorithm = value.slice(0, colon);
  const hex = value.slice(colon + 1);
  const length = ALGORITHMS[algorithm];
  if (length === undefined || hex.length !== length) return undefined;
  if (!/^[a-f0-9]+$/.test(hex)) return undefined;
  return { algorithm: algorithm as ParsedDigest['algorithm'], hex };
}

export function isDigest(value: string): boolean {
  return parseDigest(value) !== undefined;
}

/** True when `body` hashes to `digest` (false for a digest that does not parse). */
export function bodyMatchesDigest(body: Uint8Array, digest: string): boolean {
  const parsed = parseDigest(digest);
  return parsed !== undefined && createHash(parsed.algorithm).update(body).digest('hex') === parsed.hex;
}
