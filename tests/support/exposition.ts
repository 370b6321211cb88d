// A strict reader of the Prometheus text exposition format (version 0.0.4), as
// /metrics serves it: for tests and tools that check what an agent reports,
// and the independent oracle of the agent's own writer (internal/metrics,
// whose fuzz test reads back what it wrote with this). Throws
// ExpositionError on anything malformed instead of guessing; escapes are
// Prometheus' own parser's (HELP: \\ and \n; label values: \\, \" and \n).

export interface Sample {
  name: string;
  labels: Readonly<Record<string, string>>;
  value: number;
}

export interface Exposition {
  /** `# TYPE` of each metric family. */
  types: ReadonlyMap<string, string>;
  /** `# HELP` of each metric family, unescaped. */
  help: ReadonlyMap<string, string>;
  samples: readonly Sample[];
}

export class ExpositionError extends Error {
  override readonly name = 'ExpositionError';
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** Go's ParseFloat, which Prometheus uses, takes Inf and NaN in any case. */
function parseValue(raw: string, lineNo: number): number {
  const lower = raw.toLowerCase();
  if (lower === '+inf' || lower === 'inf') return Infinity;
  if (lower === '-inf') return -Infinity;
  if (lower === 'nan') return NaN;
  const value = Number(raw);
  if (raw === '' || !Number.isFinite(value)) throw new ExpositionError(`line ${lineNo}: bad value ${JSON.stringify(raw)}`);
  return value;
}

/** HELP text: `\\` and `\n` are the only escapes. */
function unescapeHelp(raw: string, lineNo: number): string {
  return raw.replace(/\\(.?)/gs, (_, next: string) => {
    if (next === '\\') return '\\';
    if (next === 'n') return '\n';
    throw new ExpositionError(`line ${lineNo}: bad escape in HELP`);
  });
}

/** Parses `{a="x",b="y"}` starting at text[start] === '{'; returns the labels and the index after '}'. */
function parseLabels(text: string, start: number, lineNo: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = start + 1;
  const fail = (why: string): never => {
    throw new ExpositionError(`line ${lineNo}: ${why}`);
  };
  while (text[i] !== '}') {
    const eq = text.indexOf('=', i);
    if (eq < 0) fail('label without value');
    const name = text.slice(i, eq);
    if (!NAME.test(name)) fail(`bad label name ${JSON.stringify(name)}`);
    if (text[eq + 1] !== '"') fail('label value not quoted');
    let value = '';
    let j = eq + 2;
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] !== '\\') {
        value += text[j];
        continue;
      }
      const next = text[++j];
      if (next === 'n') value += '\n';
      else if (next === '\\' || next === '"') value += next;
      else fail('bad escape in label value');
    }
    if (j >= text.length) fail('unterminated label value');
    if (name in labels) fail(`label ${name} twice`);
    labels[name] = value;
    i = j + 1;
    if (text[i] === ',') i++;
    else if (text[i] !== '}') fail('want , or } after a label');
  }
  return { labels, end: i + 1 };
}

export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  text.split('\n').forEach((line, index) => {
    const lineNo = index + 1;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      // `s`: HELP text may hold a carriage return or a line separator (only \n is escaped).
      const match = /^# (HELP|TYPE) (\S+) ?(.*)$/s.exec(line);
      if (match === null) return; // a plain comment
      const [, kind, name = '', rest = ''] = match;
      if (!NAME.test(name)) throw new ExpositionError(`line ${lineNo}: bad metric name ${JSON.stringify(name)}`);
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new ExpositionError(`line ${lineNo}: unknown type ${JSON.stringify(rest)}`);
        if (types.has(name)) throw new ExpositionError(`line ${lineNo}: second TYPE for ${name}`);
        types.set(name, rest);
      } else help.set(name, unescapeHelp(rest, lineNo));
      return;
    }
    const nameEnd = line.search(/[{ ]/);
    if (nameEnd <= 0) throw new ExpositionError(`line ${lineNo}: not a sample`);
    const name = line.slice(0, nameEnd);
    if (!NAME.test(name)) throw new ExpositionError(`line ${lineNo}: bad metric name ${JSON.stringify(name)}`);
    let labels: Record<string, string> = {};
    let rest = nameEnd;
    if (line[nameEnd] === '{') ({ labels, end: rest } = parseLabels(line, nameEnd, lineNo));
    const fields = line.slice(rest).trim().split(/\s+/);
    if (fields.length < 1 || fields.length > 2) throw new ExpositionError(`line ${lineNo}: want a value and at most a timestamp`);
    samples.push({ name, labels, value: parseValue(fields[0] ?? '', lineNo) });
  });
  return { types, help, samples };
}

/** The sum of the samples named `name` whose labels include all of `match`. */
export function sumSamples(exposition: Exposition, name: string, match: Readonly<Record<string, string>> = {}): number {
  let sum = 0;
  for (const sample of exposition.samples) {
    if (sample.name !== name) continue;
    if (Object.entries(match).every(([key, value]) => sample.labels[key] === value)) sum += sample.value;
  }
  return sum;
}
