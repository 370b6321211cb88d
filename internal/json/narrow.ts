// JSON is parsed to `unknown` and narrowed before use (the API server's
// objects, containerd's messages, peers' answers, config files): the one
// check that a value is a plain object whose fields can be read.

/** A non-null object that is not an array: its fields may be read (each still `unknown`). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
