// Object metadata validation where the real API server validates what mirra
// relies on: names, label keys/values, annotation keys, and the 256 KiB limit
// on all annotations of one object. Messages follow apimachinery's wording.
import type { StatusCause } from './status.ts';

export const TOTAL_ANNOTATION_SIZE_LIMIT_BYTES = 262144;

const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const NAME_PART_MSG =
  "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character " +
  "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const SUBDOMAIN_MSG =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character " +
  "(e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_VALUE_MSG =
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character " +
  "(e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

function subdomainErrors(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 253) errs.push('must be no more than 253 characters');
  if (!DNS1123_SUBDOMAIN.test(value)) errs.push(SUBDOMAIN_MSG);
  return errs;
}

/** apimachinery's IsQualifiedName: `[prefix/]name`, prefix a DNS subdomain, name <= 63 characters. */
export function qualifiedNameErrors(value: string): string[] {
  const parts = value.split('/');
  let name: string;
  const errs: string[] = [];
  if (parts.length === 1) {
    name = parts[0] ?? '';
  } else if (parts.length === 2) {
    const prefix = parts[0] ?? '';
    name = parts[1] ?? '';
    if (prefix.length === 0) errs.push('prefix part must be non-empty');
    else errs.push(...subdomainErrors(prefix).map((m) => `prefix part ${m}`));
  } else {
    return [`a qualified name ${NAME_PART_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`];
  }
  if (name.length === 0) errs.push('name part must be non-empty');
  else if (name.length > 63) errs.push('name part must be no more than 63 characters');
  if (name.length > 0 && !QUALIFIED_NAME_PART.test(name)) errs.push(`name part ${NAME_PART_MSG}`);
  return errs;
}

export function isQualifiedName(value: string): boolean {
  return qualifiedNameErrors(value).length === 0;
}

export function isLabelValue(value: string): boolean {
  return value.length <= 63 && LABEL_VALUE.test(value);
}

function invalidCause(field: string, value: string, message: string): StatusCause {
  return { reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(value)}: ${message}`, field };
}

function stringMap(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

export function annotationCauses(annotations: unknown): StatusCause[] {
  const field = 'metadata.annotations';
  const causes: StatusCause[] = [];
  let totalBytes = 0;
  for (const [key, value] of Object.entries(stringMap(annotations))) {
    // The real server lower-cases the key before checking it.
    for (const msg of qualifiedNameErrors(key.toLowerCase())) causes.push(invalidCause(field, key, msg));
    totalBytes += Buffer.byteLength(key) + Buffer.byteLength(typeof value === 'string' ? value : '');
  }
  if (totalBytes > TOTAL_ANNOTATION_SIZE_LIMIT_BYTES) {
    causes.push({ reason: 'FieldValueTooLong', message: `Too long: may not be more than ${TOTAL_ANNOTATION_SIZE_LIMIT_BYTES} bytes`, field });
  }
  return causes;
}

export function labelCauses(labels: unknown): StatusCause[] {
  const field = 'metadata.labels';
  const causes: StatusCause[] = [];
  for (const [key, value] of Object.entries(stringMap(labels))) {
    for (const msg of qualifiedNameErrors(key)) causes.push(invalidCause(field, key, msg));
    const text = typeof value === 'string' ? value : '';
    if (text.length > 63) causes.push(invalidCause(field, text, 'must be no more than 63 characters'));
    if (!LABEL_VALUE.test(text)) causes.push(invalidCause(field, text, LABEL_VALUE_MSG));
  }
  return causes;
}

function stringsOnly(field: string, value: unknown): StatusCause[] {
  if (value === undefined || value === null) return [];
  const map = stringMap(value);
  if (map !== value) return [{ reason: 'FieldValueInvalid', message: 'Invalid value: must be an object of strings', field }];
  return Object.entries(map)
    .filter(([, v]) => typeof v !== 'string')
    .map(([k]) => ({ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(k)}: value must be a string`, field }));
}

/** Validation of an object's metadata on create and update; empty when valid. */
export function metadataCauses(metadata: Record<string, unknown>): StatusCause[] {
  const causes: StatusCause[] = [];
  const name = metadata['name'];
  if (typeof name !== 'string' || name === '') {
    causes.push({ reason: 'FieldValueRequired', message: 'Required value: name or generateName is required', field: 'metadata.name' });
  } else {
    for (const msg of subdomainErrors(name)) causes.push(invalidCause('metadata.name', name, msg));
  }
  causes.push(...stringsOnly('metadata.labels', metadata['labels']), ...stringsOnly('metadata.annotations', metadata['annotations']));
  causes.push(...labelCauses(metadata['labels']), ...annotationCauses(metadata['annotations']));
  return causes;
}
