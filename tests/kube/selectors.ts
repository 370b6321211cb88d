// Label selectors (=, ==, !=, in, notin, exists, !exists, gt, lt) and field
// selectors (=, ==, !=) as the real API server parses and matches them.
import { badRequest } from './status.ts';
import { isQualifiedName, isLabelValue } from './validation.ts';

export type LabelRequirement =
  | { op: 'exists' | '!exists'; key: string }
  | { op: '=' | '!='; key: string; value: string }
  | { op: 'in' | 'notin'; key: string; values: string[] }
  | { op: 'gt' | 'lt'; key: string; value: number };

export type Labels = Readonly<Record<string, string>>;

/** Splits at commas that are not inside parentheses. */
function splitTopLevel(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      out.push(text.slice(start, i));
      start = i + 1;
    }
  }
  out.push(text.slice(start));
  return out;
}

function checkKey(key: string, selector: string): string {
  if (!isQualifiedName(key)) throw badRequest(`unable to parse requirement: invalid label key "${key}" in selector "${selector}"`);
  return key;
}

function checkValue(value: string, selector: string): string {
  if (!isLabelValue(value)) throw badRequest(`unable to parse requirement: invalid label value "${value}" in selector "${selector}"`);
  return value;
}

function parseRequirement(raw: string, selector: string): LabelRequirement {
  const text = raw.trim();
  const set = /^(\S+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(text);
  if (set !== null) {
    const key = checkKey(set[1] ?? '', selector);
    const values = (set[3] ?? '').split(',').map((v) => checkValue(v.trim(), selector));
    return { op: set[2] === 'in' ? 'in' : 'notin', key, values };
  }
  const cmp = /^([^=!<>\s]+)\s*(==|=|!=|>|<)\s*(.*)$/.exec(text);
  if (cmp !== null) {
    const key = checkKey(cmp[1] ?? '', selector);
    const operator = cmp[2] ?? '';
    const value = (cmp[3] ?? '').trim();
    if (operator === '>' || operator === '<') {
      if (!/^-?\d+$/.test(value))
        throw badRequest(`unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer in selector "${selector}"`);
      return { op: operator === '>' ? 'gt' : 'lt', key, value: Number(value) };
    }
    return { op: operator === '!=' ? '!=' : '=', key, value: checkValue(value, selector) };
  }
  if (text.startsWith('!')) return { op: '!exists', key: checkKey(text.slice(1).trim(), selector) };
  if (text !== '') return { op: 'exists', key: checkKey(text, selector) };
  throw badRequest(`unable to parse requirement: empty requirement in selector "${selector}"`);
}

/** Parses a labelSelector query value; the empty selector matches everything. Throws 400 ApiError. */
export function parseLabelSelector(selector: string): LabelRequirement[] {
  if (selector.trim() === '') return [];
  return splitTopLevel(selector).map((part) => parseRequirement(part, selector));
}

function matchesOne(req: LabelRequirement, labels: Labels): boolean {
  const has = Object.hasOwn(labels, req.key);
  const value = labels[req.key];
  switch (req.op) {
    case 'exists':
      return has;
    case '!exists':
      return !has;
    case '=':
      return has && value === req.value;
    case '!=':
      return !has || value !== req.value;
    case 'in':
      return has && req.values.includes(value ?? '');
    case 'notin':
      return !has || !req.values.includes(value ?? '');
    case 'gt':
    case 'lt': {
      if (!has || !/^-?\d+$/.test(value ?? '')) return false;
      const n = Number(value);
      return req.op === 'gt' ? n > req.value : n < req.value;
    }
  }
}

export function matchesLabels(requirements: readonly LabelRequirement[], labels: Labels | undefined): boolean {
  const actual = labels ?? {};
  return requirements.every((r) => matchesOne(r, actual));
}

export interface FieldRequirement {
  field: string;
  op: '=' | '!=';
  value: string;
}

const COMMON_FIELDS = ['metadata.name', 'metadata.namespace'];
const EXTRA_FIELDS: Readonly<Record<string, readonly string[]>> = {
  Pod: ['spec.nodeName', 'status.phase', 'status.podIP', 'spec.serviceAccountName', 'spec.schedulerName', 'spec.restartPolicy'],
  Namespace: ['status.phase'],
};

/** Parses a fieldSelector for objects of `kind`; unsupported fields are a 400 like the real server's. */
export function parseFieldSelector(selector: string, kind: string): FieldRequirement[] {
  if (selector.trim() === '') return [];
  const allowed = [...COMMON_FIELDS, ...(EXTRA_FIELDS[kind] ?? [])];
  return selector.split(',').map((part) => {
    const m = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(part);
    if (m === null) throw badRequest(`invalid selector: '${selector}'; can't understand '${part}'`);
    const field = m[1] ?? '';
    if (!allowed.includes(field)) throw badRequest(`field label not supported: ${field}`);
    return { field, op: m[2] === '!=' ? '!=' : '=', value: m[3] ?? '' };
  });
}

function fieldValue(obj: unknown, path: string): string {
  let cur: unknown = obj;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return '';
    cur = (cur as Record<string, unknown>)[part];
  }
  return typeof cur === 'string' ? cur : '';
}

export function matchesFields(requirements: readonly FieldRequirement[], obj: unknown): boolean {
  return requirements.every((r) => (fieldValue(obj, r.field) === r.value) === (r.op === '='));
}
