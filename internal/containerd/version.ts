// Which containerd runs the node, for the agent's start-up check: how
// containerd reads the CRI registry config_path depends on its release (2.1
// and later pull through the transfer service, which takes it as one
// directory). One unary Version call over the socket, with a deadline; it
// never rejects: a containerd that does not answer is an unknown version.
import { errorMessage } from '../errors/message.ts';
import { createGrpcChannel } from './grpc-channel.ts';
import { VERSION_VERSION } from './proto-codecs.ts';

/**
 * A known version has its major and minor numbers and `text` as printed in
 * messages ("2.1.9" for "v2.1.9" or "2.1.9+unknown"); an unknown one says why
 * (the call failed, or containerd reported a version of unknown format).
 */
export type ContainerdVersion = { known: true; text: string; major: number; minor: number } | { known: false; reason: string };

/**
 * major.minor of a containerd version string: "v2.1.9", "2.1.9+unknown",
 * "1.6.20~ds1" (Debian), "2.2.0-rc.1". Anything else is unknown.
 */
export function parseContainerdVersion(raw: string): ContainerdVersion {
  const match = /^v?(\d{1,4})\.(\d{1,4})(?:\.\d{1,6})?(?:[-+~].*)?$/.exec(raw.trim());
  if (match === null) return { known: false, reason: `containerd reported version ${JSON.stringify(raw.slice(0, 100))}` };
  const text = raw.trim().replace(/^v/, '').replace(/\+.*$/, '');
  return { known: true, text, major: Number(match[1]), minor: Number(match[2]) };
}

/** containerd's {version, revision}; rejects when containerd does not answer within `timeoutMs` or answers something else. */
export async function requestContainerdVersion(socket: string, timeoutMs = 5_000): Promise<{ version: string; revision: string }> {
  // Fails fast when nothing listens on the socket: the agent waits for containerd later, not here.
  const channel = createGrpcChannel({ socket });
  try {
    const response = await channel.unary(VERSION_VERSION, {}, timeoutMs);
    const { version, revision } = typeof response === 'object' && response !== null ? (response as Record<string, unknown>) : {};
    if (typeof version !== 'string' || typeof revision !== 'string') throw new Error('containerd Version: malformed response');
    return { version, revision };
  } finally {
    channel.close();
  }
}

/** The version of the containerd at `socket`, or unknown (with the reason, one line) when it cannot be asked. */
export async function containerdVersion(socket: string, timeoutMs = 5_000): Promise<ContainerdVersion> {
  try {
    return parseContainerdVersion((await requestContainerdVersion(socket, timeoutMs)).version);
  } catch (err) {
    return { known: false, reason: `cannot ask containerd at ${socket} its version: ${(errorMessage(err).split('\n')[0] ?? '').trim()}` };
  }
}
