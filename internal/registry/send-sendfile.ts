// The fastest path for file-backed content: the kernel sends the file to the
// client's socket (sendfile-addon.ts), no byte passes through JavaScript.
// Only for a plain TCP socket (TLS needs the bytes in user space; those go
// through send-file.ts's buffers). Same contract as streamFile: a file
// shorter than the answer is found before the headers (an error answer,
// nothing sent); a failure after them destroys the response; a client that
// goes away ends the send at its next step; the file handle is always closed.
//
// One call sends the whole answer. Node cannot see bytes it did not write, so
// the connection's idle timeout (--client-idle-timeout) is off meanwhile and
// the addon applies it instead, more exactly than the copying path can: the
// send ends when the socket took nothing for that long (the copying path
// counts a 1 MiB chunk as moved only once all of it is taken).
import type { FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { sendfileError, type SendCall, type SendfileAddon } from './sendfile-addon.ts';
import { sendFailed, type StreamOptions, type StreamOutcome } from './send-stream.ts';

/** The client closed its end, stopped reading, or the response was destroyed: not a failure of ours. */
const CLIENT_GONE_CODES = new Set(['EPIPE', 'ECONNRESET', 'ECANCELED', 'ETIMEDOUT']);

interface TcpHandle {
  fd?: unknown;
}

/** The descriptor of a plain TCP socket that sendfile may write to, or undefined. */
export function sendfileSocketFd(res: ServerResponse): number | undefined {
  const socket: (Socket & { encrypted?: boolean; _handle?: TcpHandle | null }) | null = res.socket;
  if (socket === null || socket.destroyed || socket.encrypted === true) return undefined;
  const fd = socket._handle?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : undefined;
}

/** Resolves once everything written to the socket before (the headers) has reached the kernel; false if it closed first. */
function flushed(socket: Socket): Promise<boolean> {
  return new Promise((resolve) => {
    const onClose = (): void => resolve(false);
    socket.once('close', onClose);
    socket.write('', (err) => {
      socket.off('close', onClose);
      resolve(err === undefined || err === null);
    });
  });
}

interface Send extends SendCall {
  addon: SendfileAddon;
  res: ServerResponse;
}

/** The whole send: resolves with the bytes sent and the error that ended it early, if any. */
function send(call: Send): Promise<{ sent: number; error?: Error & { code?: string } }> {
  return new Promise((resolve) => {
    const { addon, res } = call;
    let handle: object | undefined;
    const cancel = (): void => {
      if (handle !== undefined) addon.cancel(handle);
    };
    res.once('close', cancel);
    handle = addon.send(call, (code, sent) => {
      res.off('close', cancel);
      handle = undefined;
      resolve(code === 0 ? { sent } : { sent, error: sendfileError(code, sent) });
    });
    if (res.destroyed) cancel();
  });
}

/**
 * Writes `expectedBytes` bytes of the file from byte `start` to `res` with
 * sendfile, then ends it. Rejects only when nothing has been sent yet.
 */
export async function sendfileBody(
  res: ServerResponse,
  handle: FileHandle,
  start: number,
  options: StreamOptions & { addon: SendfileAddon; socketFd: number },
): Promise<StreamOutcome> {
  const { expectedBytes, counter } = options;
  let bytesSent = 0;
  const socket = res.socket;
  const idleMs = socket?.timeout ?? 0;
  try {
    const { size } = await handle.stat();
    if (size < start + expectedBytes) throw new Error(`file has ${size} bytes, the answer needs ${start + expectedBytes}`);
    if (socket === null || res.destroyed) return { kind: 'client-gone', bytesSent };
    options.writeHead();
    if (counter !== undefined) counter.bytesSent = 0;
    res.flushHeaders();
    if (!(await flushed(socket))) return { kind: 'client-gone', bytesSent };
    if (expectedBytes > 0) {
      if (idleMs > 0) socket.setTimeout(0);
      const { sent, error } = await send({
        addon: options.addon,
        res,
        socketFd: options.socketFd,
        fileFd: handle.fd,
        offset: start,
        count: expectedBytes,
        idleMs,
      });
      bytesSent = sent;
      if (counter !== undefined) counter.bytesSent = bytesSent;
      if (error !== undefined) {
        if (!CLIENT_GONE_CODES.has(error.code ?? '') && !res.destroyed) throw error;
        res.destroy();
        return { kind: 'client-gone', bytesSent };
      }
      if (idleMs > 0 && !socket.destroyed) socket.setTimeout(idleMs);
    }
    res.end();
    return { kind: 'complete', bytesSent };
  } catch (err) {
    return sendFailed(res, err, bytesSent);
  } finally {
    await handle.close().catch(() => {});
  }
}
