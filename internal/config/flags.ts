// A small table-driven flag parser: each flag has a name, an environment
// variable, a default, a description and a parser that throws a one-line
// reason. `mirra <command> --help` prints the table.
import { parseArgs } from 'node:util';
import { errorMessage } from '../errors/message.ts';

export interface FlagSpec<T> {
  name: string;
  env: string;
  description: string;
  defaultValue: T;
  /** Shown in --help instead of the default's string form (e.g. "all"). */
  defaultLabel?: string;
  /** Boolean flags take no value on the command line (`--resolve-tags=false` also works). */
  boolean?: boolean;
  parse(raw: string): T;
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** For a UsageError: prints `mirra <command>: <message>` on stderr and returns exit code 2. Anything else is rethrown. */
export function usageExit(command: string, err: unknown): number {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`mirra ${command}: ${err.message}\n`);
  return 2;
}

/** Whether the command line asks for help (`--help` or `-h`). */
export function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

/** Throws UsageError naming the first argument beyond the `allowed` first ones. */
export function rejectExtraArguments(positionals: readonly string[], allowed = 0): void {
  const extra = positionals[allowed];
  if (extra !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(extra)}`);
}

type Specs = Record<string, FlagSpec<unknown>>;
type Values<S extends Specs> = { [K in keyof S]: S[K] extends FlagSpec<infer T> ? T : never };

/**
 * Resolves every flag from argv, then env, then its default. Throws UsageError
 * with a single line naming the flag for unknown flags and bad values.
 */
export function parseFlags<S extends Specs>(specs: S, argv: string[], env: NodeJS.ProcessEnv): { values: Values<S>; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const spec of Object.values(specs)) options[spec.name] = { type: 'string' };
  // Booleans are parsed as strings so that `--flag=false` works; a bare `--flag` means true.
  const normalized = argv.map((arg) => {
    const spec = Object.values(specs).find((s) => s.boolean === true && arg === `--${s.name}`);
    return spec === undefined ? arg : `--${spec.name}=true`;
  });
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: normalized, options, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError(err instanceof Error ? firstLine(err.message) : String(err));
  }
  const values: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(specs)) {
    const fromArgs = parsed.values[spec.name];
    const raw = typeof fromArgs === 'string' ? fromArgs : env[spec.env];
    if (raw === undefined) {
      values[key] = spec.defaultValue;
      continue;
    }
    try {
      values[key] = spec.parse(raw);
    } catch (err) {
      const source = typeof fromArgs === 'string' ? `--${spec.name}` : `${spec.env} (--${spec.name})`;
      const reason = errorMessage(err);
      throw new UsageError(`invalid value ${JSON.stringify(raw)} for ${source}: ${reason}`);
    }
  }
  return { values: values as Values<S>, positionals: parsed.positionals };
}

export function flagHelp(specs: Specs): string {
  const rows = Object.values(specs).map((spec) => {
    const left = `  --${spec.name}${spec.boolean === true ? '' : ' value'}`;
    const def = spec.defaultLabel ?? formatDefault(spec.defaultValue);
    const head = left.length < 36 ? left.padEnd(36) : `${left}\n${''.padEnd(36)}`;
    return `${head}${spec.description}\n${''.padEnd(36)}env ${spec.env}, default ${def}`;
  });
  return rows.join('\n');
}

function formatDefault(value: unknown): string {
  if (Array.isArray(value)) return value.length === 0 ? '(none)' : value.join(',');
  if (value === '') return '(empty)';
  return String(value);
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}

// Parsers shared by the commands' flag tables.

export function parseBoolean(raw: string): boolean {
  if (['true', '1', 'yes'].includes(raw)) return true;
  if (['false', '0', 'no'].includes(raw)) return false;
  throw new Error('want true or false');
}

export function parseList(raw: string): string[] {
  return raw
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

export function parseNonEmpty(raw: string): string {
  if (raw.trim() === '') throw new Error('must not be empty');
  return raw;
}

export function parseIntegerIn(raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw.trim())) throw new Error(`want a whole number from ${min} to ${max}`);
  const value = Number(raw);
  if (value < min || value > max) throw new Error(`want a whole number from ${min} to ${max}`);
  return value;
}

/** Duration like `500ms`, `2s`, `1m`; a bare number is milliseconds. Returns milliseconds. */
export function parseDurationMs(raw: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(raw.trim());
  if (match === null) throw new Error('want a duration such as 500ms, 2s or 1m');
  const amount = Number(match[1]);
  const unit = match[2] ?? 'ms';
  return unit === 'm' ? amount * 60_000 : unit === 's' ? amount * 1000 : amount;
}
