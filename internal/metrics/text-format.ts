// The Prometheus text exposition format, version 0.0.4, as /metrics writes it
// (family.ts and histogram.ts write their samples with it): the escapes of
// HELP text and label values, and numbers as Go's ParseFloat, which
// Prometheus reads them with, takes them back exactly. tests/support/exposition.ts
// is the independent reader the tests hold it to.

/** HELP text: backslash and newline are escaped, nothing else. */
export function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => (c === '\\' ? '\\\\' : '\\n'));
}

/** A label value: backslash, double quote and newline are escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\\' ? '\\\\' : c === '"' ? '\\"' : '\\n'));
}

/**
 * A sample value (or a bucket's `le`): `+Inf`, `-Inf`, `NaN`, `-0`, and
 * integers of 1e21 and above written out instead of JavaScript's `1e+21`
 * (Prometheus takes both; the digits are what every other client writes).
 * Every other number is JavaScript's shortest round-trip form.
 */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  if (Object.is(value, -0)) return '-0';
  if (Number.isInteger(value) && Math.abs(value) >= 1e21) return BigInt(value).toString();
  return String(value);
}

/** One sample line: `name{a="x",b="y"} value` (no braces without labels). */
export function sampleLine(name: string, labels: readonly (readonly [string, string])[], value: number): string {
  if (labels.length === 0) return `${name} ${formatValue(value)}`;
  const pairs = labels.map(([label, labelValue]) => `${label}="${escapeLabelValue(labelValue)}"`);
  return `${name}{${pairs.join(',')}} ${formatValue(value)}`;
}
