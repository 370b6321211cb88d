// The one line an error shows in a log field or a message: anything can be
// thrown in JavaScript, so a caught value is `unknown` and narrowed here once
// instead of at every catch.

/** The message of an Error, or the thrown value as a string. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
