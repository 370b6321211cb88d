// One gRPC call on an HTTP/2 stream (grpc-channel.ts opens the stream): the
// request message written, the response messages handed out one at a time
// with flow control (pause() stops reading the stream, so HTTP/2's window
// holds containerd back), and the end: the status from the trailers, or from
// the headers of a trailers-only response, or the error of a stream that
// ended without one (HTTP status, reset, lost connection). An optional
// deadline is sent as grpc-timeout and enforced here too. Handlers are called
// until the end is reported once; cancel() resets the stream (CANCEL) and
// reports nothing.
import { constants as h2, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { errorMessage } from '../errors/message.ts';
import { createGrpcFrameReader } from './grpc-frames.ts';
import { GrpcError, GrpcStatus, httpStatusError, resetError, statusOf } from './grpc-status.ts';

export interface CallHandlers {
  /** A response message, decoded. */
  onMessage(message: unknown): void;
  /** Once, unless cancelled first: undefined for status OK, else the GrpcError. */
  onEnd(err: GrpcError | undefined): void;
}

export interface GrpcCall {
  /** Stops handing out messages (and reading the stream) until resume(). */
  pause(): void;
  resume(): void;
  /** Ends the call (RST_STREAM CANCEL); no handler is called afterwards. */
  cancel(): void;
}

export interface CallOptions {
  /** The stream, its request headers sent; the call writes the request frame and ends it. */
  stream: ClientHttp2Stream;
  session: ClientHttp2Session;
  /** For messages: where the connection goes (the socket path). */
  target: string;
  /** The request, already framed. */
  request: Buffer;
  /** Decodes a response message; a throw fails the call (INTERNAL). */
  decode(bytes: Buffer): unknown;
  deadlineMs: number | undefined;
  maxMessageBytes: number;
  handlers: CallHandlers;
}

/** The value of the grpc-timeout header: at most 8 digits and a unit. */
export function grpcTimeout(deadlineMs: number): string {
  const ms = Math.max(0, Math.ceil(deadlineMs));
  return ms <= 99_999_999 ? `${ms}m` : `${Math.min(99_999_999, Math.ceil(ms / 1000))}S`;
}

/** The error of a stream that closed without a status. */
function closedError(o: CallOptions, streamError: Error | undefined): GrpcError {
  // The session was destroyed (socket closed or failed) or is going away (GOAWAY): the connection, not the call.
  if (o.session.destroyed || o.session.closed) {
    const cause = streamError?.cause instanceof Error ? streamError.cause : streamError;
    return new GrpcError(GrpcStatus.UNAVAILABLE, `connection to ${o.target} ${cause === undefined ? 'closed' : `failed: ${cause.message}`}`);
  }
  return resetError(o.stream.rstCode ?? h2.NGHTTP2_NO_ERROR);
}

/** A 200 response with content-type application/grpc, or the error it is instead (undefined: carry on). */
function responseError(headers: IncomingHttpHeaders): GrpcError | undefined {
  if (statusOf(headers) !== undefined) return undefined;
  const httpStatus = Number(headers[':status']);
  if (httpStatus !== 200) return httpStatusError(httpStatus);
  const type = headers['content-type'] ?? '';
  if (!/^application\/grpc(?:$|[+;])/.test(type)) return new GrpcError(GrpcStatus.UNKNOWN, `unexpected content-type ${JSON.stringify(type.slice(0, 100))}`);
  return undefined;
}

function cancelStream(stream: ClientHttp2Stream): void {
  if (!stream.closed) stream.close(h2.NGHTTP2_CANCEL);
}

/** Fails the call when its deadline passes (the timer does not keep the process alive; the open stream does). */
function deadlineTimer(deadlineMs: number | undefined, fail: (err: GrpcError) => void): NodeJS.Timeout | undefined {
  if (deadlineMs === undefined) return undefined;
  const timer = setTimeout(() => fail(new GrpcError(GrpcStatus.DEADLINE_EXCEEDED, `deadline of ${deadlineMs} ms exceeded`)), deadlineMs);
  timer.unref();
  return timer;
}

export function startCall(o: CallOptions): GrpcCall {
  const { stream, handlers } = o;
  const frames = createGrpcFrameReader(o.maxMessageBytes);
  let done = false;
  let paused = false;
  let closed = false;
  let status: { code: number; message: string } | undefined;
  let streamError: Error | undefined;

  const finish = (err: GrpcError | undefined): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    handlers.onEnd(err);
  };
  const fail = (err: GrpcError): void => {
    finish(err);
    cancelStream(stream);
  };
  const timer = deadlineTimer(o.deadlineMs, fail);
  // After the stream closed and every message went out: the status.
  const settle = (): void => {
    if (status === undefined) return finish(closedError(o, streamError));
    if (frames.buffered > 0) return finish(new GrpcError(GrpcStatus.INTERNAL, `the stream ended inside a message (${frames.buffered} bytes left)`));
    finish(status.code === GrpcStatus.OK ? undefined : new GrpcError(status.code, status.message));
  };
  // Hands out the whole messages received, until paused; then, once the stream closed, the end.
  const drain = (): void => {
    while (!done && !paused) {
      let message: unknown;
      try {
        const bytes = frames.next();
        if (bytes === undefined) break;
        message = o.decode(bytes);
      } catch (err) {
        return fail(err instanceof GrpcError ? err : new GrpcError(GrpcStatus.INTERNAL, `cannot decode a response: ${errorMessage(err)}`));
      }
      handlers.onMessage(message);
    }
    if (closed && !paused) settle();
  };

  stream.on('response', (headers: IncomingHttpHeaders) => {
    const err = responseError(headers);
    if (err === undefined) status = statusOf(headers);
    else fail(err);
  });
  stream.on('trailers', (trailers: IncomingHttpHeaders) => {
    status = statusOf(trailers) ?? status;
  });
  stream.on('data', (chunk: Buffer) => {
    frames.push(chunk);
    drain();
  });
  stream.on('error', (err: Error) => {
    streamError = err;
  });
  stream.on('close', () => {
    closed = true;
    if (!done) drain();
  });
  stream.end(o.request);

  return {
    pause() {
      if (done || paused) return;
      paused = true;
      stream.pause();
    },
    resume() {
      if (done || !paused) return;
      paused = false;
      drain();
      if (!done && !paused) stream.resume();
    },
    cancel() {
      if (done) return;
      done = true;
      clearTimeout(timer);
      cancelStream(stream);
    },
  };
}
