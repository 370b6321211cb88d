// The three patch types the API server accepts for built-in resources:
// JSON merge patch (RFC 7386), strategic merge patch (here: merge patch
// semantics, lists replaced, `$`-directives dropped) and JSON patch (RFC 6902).
import { ApiError, badRequest, failure, unsupportedMediaType } from './status.ts';

export const MERGE_PATCH = 'application/merge-patch+json';
export const STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json';
export const JSON_PATCH = 'application/json-patch+json';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** RFC 7386. Returns a new value; neither argument is modified. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

/** Strategic merge patch as far as the stand-in needs it: maps merge, lists are replaced. */
export function strategicMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) continue; // $patch, $retainKeys, $setElementOrder/...: not modelled
    if (value === null) delete out[key];
    else out[key] = strategicMergePatch(out[key], value);
  }
  return out;
}

function unprocessable(message: string): ApiError {
  return new ApiError(failure(422, 'Invalid', message));
}

function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw unprocessable(`invalid JSON pointer: ${JSON.stringify(pointer)}`);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
}

type Container = Record<string, unknown> | unknown[];

/** The parent container of the pointer's last token, and that token. */
function locate(doc: unknown, tokens: string[], op: string, pointer: string): { parent: Container; key: string } {
  let cur: unknown = doc;
  for (const token of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(token)];
    else if (isObject(cur)) cur = cur[token];
    else cur = undefined;
    if (cur === undefined) throw unprocessable(`${op} operation does not apply: doc is missing path: ${pointer}: missing value`);
  }
  if (!Array.isArray(cur) && !isObject(cur)) throw unprocessable(`${op} operation does not apply: doc is missing path: ${pointer}: missing value`);
  return { parent: cur, key: tokens[tokens.length - 1] ?? '' };
}

function arrayIndex(arr: unknown[], key: string, forInsert: boolean, pointer: string): number {
  if (forInsert && key === '-') return arr.length;
  const i = /^(0|[1-9]\d*)$/.test(key) ? Number(key) : -1;
  const max = forInsert ? arr.length : arr.length - 1;
  if (i < 0 || i > max) throw unprocessable(`Unable to access invalid index: ${key} (path ${pointer})`);
  return i;
}

function getAt(doc: unknown, pointer: string, op: string): unknown {
  let cur: unknown = doc;
  for (const token of parsePointer(pointer)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, token, false, pointer)];
    else if (isObject(cur) && Object.hasOwn(cur, token)) cur = cur[token];
    else throw unprocessable(`${op} operation does not apply: doc is missing path: ${pointer}: missing value`);
  }
  return cur;
}

function removeAt(doc: unknown, pointer: string, op: string): unknown {
  const { parent, key } = locate(doc, parsePointer(pointer), op, pointer);
  if (Array.isArray(parent)) return parent.splice(arrayIndex(parent, key, false, pointer), 1)[0];
  if (!Object.hasOwn(parent, key)) throw unprocessable(`${op} operation does not apply: doc is missing key: ${pointer}: missing value`);
  const old = parent[key];
  delete parent[key];
  return old;
}

/** An add (or replace: the key or index must exist) of `value` at `pointer`, for operation `op`. */
interface AddOperation {
  op: string;
  pointer: string;
  value: unknown;
  replace: boolean;
}

/** Returns the new document (the root may be replaced). */
function addAt(doc: unknown, { op, pointer, value, replace }: AddOperation): unknown {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return value;
  const { parent, key } = locate(doc, tokens, op, pointer);
  if (Array.isArray(parent)) {
    const i = arrayIndex(parent, key, !replace, pointer);
    parent.splice(i, replace ? 1 : 0, value);
  } else {
    if (replace && !Object.hasOwn(parent, key)) throw unprocessable(`replace operation does not apply: doc is missing key: ${pointer}: missing value`);
    parent[key] = value;
  }
  return doc;
}

function stringField(op: Record<string, unknown>, field: string): string {
  const value = op[field];
  if (typeof value !== 'string') throw badRequest(`json patch operation is missing the string field "${field}"`);
  return value;
}

/** RFC 6902 on a copy of `target`. Throws 400 for a malformed patch, 422 when an operation does not apply. */
export function jsonPatch(target: unknown, patch: unknown): unknown {
  if (!Array.isArray(patch)) throw badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  let doc: unknown = structuredClone(target);
  for (const raw of patch) {
    if (!isObject(raw)) throw badRequest('json patch operations must be objects');
    const op = stringField(raw, 'op');
    const path = stringField(raw, 'path');
    switch (op) {
      case 'add':
      case 'replace':
        if (!Object.hasOwn(raw, 'value')) throw badRequest(`json patch ${op} operation is missing "value"`);
        doc = addAt(doc, { op, pointer: path, value: structuredClone(raw['value']), replace: op === 'replace' });
        break;
      case 'remove':
        removeAt(doc, path, op);
        break;
      case 'move': {
        const from = stringField(raw, 'from');
        const value = removeAt(doc, from, op);
        doc = addAt(doc, { op, pointer: path, value, replace: false });
        break;
      }
      case 'copy':
        doc = addAt(doc, { op, pointer: path, value: structuredClone(getAt(doc, stringField(raw, 'from'), op)), replace: false });
        break;
      case 'test': {
        const actual = getAt(doc, path, op);
        if (JSON.stringify(canonical(actual)) !== JSON.stringify(canonical(raw['value']))) {
          throw unprocessable(`testing value ${path} failed: test failed`);
        }
        break;
      }
      default:
        throw badRequest(`Unexpected kind: ${op}`);
    }
  }
  return doc;
}

/** Key-order independent form for equality in `test`. */
function canonical(value: unknown): Json {
  if (Array.isArray(value)) return value.map(canonical);
  if (isObject(value)) {
    const out: { [key: string]: Json } = {};
    for (const key of Object.keys(value).sort()) out[key] = canonical(value[key]);
    return out;
  }
  return value === undefined ? null : (value as Json);
}

/** Applies a patch body of the given Content-Type (parameters ignored); 415 for other types. */
export function applyPatch(contentType: string, target: unknown, body: string): unknown {
  const type = (contentType.split(';')[0] ?? '').trim().toLowerCase();
  if (type !== MERGE_PATCH && type !== STRATEGIC_MERGE_PATCH && type !== JSON_PATCH) throw unsupportedMediaType(contentType);
  let patch: unknown;
  try {
    patch = JSON.parse(body);
  } catch (err) {
    throw badRequest(`error decoding patch: ${(err as Error).message}`);
  }
  if (type === JSON_PATCH) return jsonPatch(target, patch);
  if (!isObject(patch)) throw badRequest('error decoding patch: a merge patch must be a JSON object');
  return type === MERGE_PATCH ? mergePatch(target, patch) : strategicMergePatch(target, patch);
}
