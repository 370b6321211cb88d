// The first entry of an OCI error body ({"errors":[{"code","message","detail"}]}),
// narrowed from the raw JSON, for tests that check which error an answer carries.
import { isRecord } from '../../../internal/json/narrow.ts';

export interface OciErrorEntry {
  code: unknown;
  detail: Record<string, unknown> | undefined;
}

/** The first error of the body, or undefined when the body is not an OCI error body. */
export function firstOciError(body: string | Buffer | undefined): OciErrorEntry | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body?.toString() ?? '');
  } catch {
    return undefined;
  }
  const first: unknown = isRecord(parsed) && Array.isArray(parsed.errors) ? parsed.errors[0] : undefined;
  if (!isRecord(first)) return undefined;
  return { code: first.code, detail: isRecord(first.detail) ? first.detail : undefined };
}
