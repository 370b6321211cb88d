// The shared peer secret, read once at start-up from a file (the chart mounts
// a Kubernetes Secret there). One key per line: the first signs, every line is
// accepted when verifying, so a key can be rotated without a window in which
// agents refuse each other (add the new key first, then the new key alone).
// Blank lines and surrounding whitespace are ignored; a key is used as the
// UTF-8 bytes of its line. A file that cannot be read or holds no usable key
// is an error: with the flag set, auth is never silently off.
import { open } from 'node:fs/promises';
import { errorMessage } from '../errors/message.ts';

export const MIN_KEY_BYTES = 16;
const MAX_FILE_BYTES = 64 * 1024;
const MAX_KEYS = 8;

export class PeerSecretError extends Error {
  override readonly name = 'PeerSecretError';
}

export interface PeerKeys {
  /** Signs outgoing requests. */
  signing: Buffer;
  /** Accepted on incoming requests (signing first). */
  accepted: Buffer[];
}

export function parsePeerKeys(text: string, path = 'the peer secret'): PeerKeys {
  const lines = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '');
  if (lines.length === 0) throw new PeerSecretError(`${path} is empty`);
  if (lines.length > MAX_KEYS) throw new PeerSecretError(`${path} holds ${lines.length} keys; at most ${MAX_KEYS}`);
  const keys = lines.map((line) => Buffer.from(line, 'utf8'));
  const short = keys.findIndex((key) => key.length < MIN_KEY_BYTES);
  if (short !== -1) throw new PeerSecretError(`${path}: key on line ${short + 1} is shorter than ${MIN_KEY_BYTES} bytes`);
  const [signing] = keys;
  if (signing === undefined) throw new PeerSecretError(`${path} is empty`);
  return { signing, accepted: keys };
}

/** Reads and parses the secret file; throws PeerSecretError with one line naming the file. */
export async function loadPeerKeys(path: string): Promise<PeerKeys> {
  let text: string;
  try {
    const file = await open(path, 'r');
    try {
      const stat = await file.stat();
      if (!stat.isFile()) throw new PeerSecretError(`${path} is not a regular file`);
      if (stat.size > MAX_FILE_BYTES) throw new PeerSecretError(`${path} is ${stat.size} bytes; a peer secret is at most ${MAX_FILE_BYTES}`);
      text = await file.readFile('utf8');
    } finally {
      await file.close();
    }
  } catch (err) {
    if (err instanceof PeerSecretError) throw err;
    const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
    throw new PeerSecretError(`cannot read peer secret ${path}: ${code || errorMessage(err)}`);
  }
  return parsePeerKeys(text, path);
}
