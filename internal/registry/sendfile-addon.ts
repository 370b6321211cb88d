// Finds and loads mirra-sendfile.node (native/sendfile.c): sendfile(2) for
// local blobs, so their bytes go from the page cache to the client's socket
// without two copies through JavaScript buffers. --sendfile chooses: `auto`
// (the default) loads the addon beside the agent's bundle (dist/ in the
// image, where `npm run build` puts it) and falls back to copying when it is
// not there or does not load (one log line says which); `off` always copies;
// a path must load, or the agent does not start. Loaded once, at start, so
// that a broken addon is seen at once and not on the first pull.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { getSystemErrorName } from 'node:util';

/** The file name of the addon, beside the bundle. */
export const SENDFILE_ADDON_FILE = 'mirra-sendfile.node';
/** The addon's code for a file that ended before the bytes asked for (not an errno). */
export const CODE_FILE_ENDED = 65536;

/** What the addon keeps for one call; only cancel() takes it. */
export type SendHandle = object;

/** One send: `count` bytes of the file from `offset` to the socket. */
export interface SendCall {
  socketFd: number;
  fileFd: number;
  offset: number;
  count: number;
  /** The socket took nothing for this long: ETIMEDOUT (0: no limit). */
  idleMs: number;
}

export interface SendfileAddon {
  /**
   * Sends the bytes, then calls `done` once: code 0, an errno (ETIMEDOUT:
   * the socket took nothing for `idleMs`), CODE_FILE_ENDED, or a negative
   * libuv status.
   */
  send(call: SendCall, done: (code: number, sent: number) => void): SendHandle;
  /** Ends the call at its next step; `done` still comes (ECANCELED). */
  cancel(handle: SendHandle): void;
}

export type SendfileChoice = { kind: 'auto' } | { kind: 'off' } | { kind: 'path'; path: string };

export type SendfileLoad = { addon: SendfileAddon; path: string } | { addon: undefined; reason: string };

export function parseSendfileChoice(raw: string): SendfileChoice {
  const value = raw.trim();
  if (value === 'auto') return { kind: 'auto' };
  if (value === 'off') return { kind: 'off' };
  if (value === '' || !value.endsWith('.node')) throw new Error('want auto, off, or the path of mirra-sendfile.node');
  return { kind: 'path', path: value };
}

/** Where `auto` looks: beside the module that runs this code (the bundle dist/mirra.mjs, in the image). */
export function defaultAddonPath(): string {
  return fileURLToPath(new URL(`./${SENDFILE_ADDON_FILE}`, import.meta.url));
}

function asAddon(loaded: unknown): SendfileAddon | undefined {
  if (typeof loaded !== 'object' || loaded === null) return undefined;
  const { send, cancel } = loaded as Record<string, unknown>;
  if (typeof send !== 'function' || typeof cancel !== 'function') return undefined;
  const native = { send: send as (...args: unknown[]) => SendHandle, cancel: cancel as (handle: SendHandle) => void };
  return {
    send: (call, done) => native.send(call.socketFd, call.fileFd, call.offset, call.count, call.idleMs, done),
    cancel: (handle) => native.cancel(handle),
  };
}

function load(path: string): SendfileAddon {
  const addon = asAddon(createRequire(import.meta.url)(path));
  if (addon === undefined) throw new Error(`${path} is not mirra's sendfile addon (no send and cancel)`);
  return addon;
}

/**
 * Loads the addon as chosen. `auto` never fails (a reason instead); a path
 * that does not load throws a one-line error naming --sendfile.
 */
export function loadSendfile(choice: SendfileChoice, autoPath = defaultAddonPath()): SendfileLoad {
  if (choice.kind === 'off') return { addon: undefined, reason: '--sendfile=off' };
  if (choice.kind === 'path') {
    try {
      return { addon: load(choice.path), path: choice.path };
    } catch (err) {
      const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
      throw new Error(`--sendfile ${choice.path}: cannot load it (${why}); build it with \`npm run build\`, or use --sendfile=auto or off`, { cause: err });
    }
  }
  if (!existsSync(autoPath)) return { addon: undefined, reason: `no ${autoPath}` };
  try {
    return { addon: load(autoPath), path: autoPath };
  } catch (err) {
    return { addon: undefined, reason: `${autoPath} does not load: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}` };
  }
}

/** An error for the addon's code: `code` the errno's name (EPIPE, ETIMEDOUT, ...), none for a file that ended early. */
export function sendfileError(code: number, sent: number): Error & { code?: string } {
  if (code === CODE_FILE_ENDED) return new Error(`file ended after ${sent} more bytes`);
  const name = getSystemErrorName(code > 0 ? -code : code);
  const err: Error & { code?: string } = new Error(`sendfile: ${name}`);
  err.code = name;
  return err;
}
