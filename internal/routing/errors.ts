/** What part of a peer's summary was unusable. */
export type SummaryErrorCode = 'header' | 'version' | 'base64' | 'shard' | 'limits' | 'inconsistent';

/** The only error the summary decoder throws: untrusted annotations that cannot be used. */
export class SummaryError extends Error {
  readonly code: SummaryErrorCode;

  constructor(code: SummaryErrorCode, message: string) {
    super(message);
    this.name = 'SummaryError';
    this.code = code;
  }
}
