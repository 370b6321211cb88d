import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The root logger: JSON lines to stdout (or the given stream); components take children of it. */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  const options = { level, base: { app: 'mirra' }, timestamp: pino.stdTimeFunctions.isoTime };
  return destination === undefined ? pino(options) : pino(options, destination);
}
