// WWW-Authenticate challenges of a registry (RFC 7235 syntax, the Docker
// registry token spec's Bearer parameters) for private images (issue 15):
// the agent learns the upstream's Bearer challenge from its 401 and answers
// containerd's first request for such an image with the same challenge for
// that repository, so that containerd fetches a token from the registry's own
// token service with the pod's pull secret. Only Bearer is ever issued: a
// Basic challenge would make containerd send the password to the mirror.
//
// Header values are untrusted (the upstream's): parsed with bounds, and a
// realm must be an absolute http(s) URL.

export interface BearerChallenge {
  /** The token service's URL. */
  readonly realm: string;
  readonly service: string | undefined;
  readonly scope: string | undefined;
  /** Why a token was refused (`invalid_token`, `insufficient_scope`): containerd gives up on the host, as for the registry itself, only when it is there. */
  readonly error?: string;
}

/** One challenge of a header: its scheme (lower case) and parameters (names lower case). */
export interface Challenge {
  readonly scheme: string;
  readonly params: ReadonlyMap<string, string>;
}

/** The longest header value that is parsed (a real Bearer challenge is a few hundred bytes). */
const MAX_HEADER_CHARS = 4096;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/;

/** Reads a quoted-string at `at` (the opening quote); returns its value and the index after the closing quote. */
function quoted(text: string, at: number): { value: string; next: number } | undefined {
  let value = '';
  for (let i = at + 1; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') return { value, next: i + 1 };
    if (c === '\\') {
      i++;
      if (i >= text.length) return undefined;
      value += text[i]!;
    } else if (c < ' ' || c === '\x7f') return undefined;
    else value += c;
  }
  return undefined;
}

interface Cursor {
  readonly text: string;
  at: number;
}

function skipSpaces(cursor: Cursor): void {
  while (cursor.at < cursor.text.length && (cursor.text[cursor.at] === ' ' || cursor.text[cursor.at] === '\t')) cursor.at++;
}

/** One `name=value` at the cursor, or undefined (and the cursor unmoved) when there is none. */
function param(cursor: Cursor): { name: string; value: string } | undefined {
  const start = cursor.at;
  const name = TOKEN.exec(cursor.text.slice(cursor.at))?.[0];
  if (name === undefined) return undefined;
  cursor.at += name.length;
  skipSpaces(cursor);
  if (cursor.text[cursor.at] !== '=') {
    cursor.at = start;
    return undefined;
  }
  cursor.at++;
  skipSpaces(cursor);
  if (cursor.text[cursor.at] === '"') {
    const q = quoted(cursor.text, cursor.at);
    if (q === undefined) throw new Error('unterminated quoted string');
    cursor.at = q.next;
    return { name: name.toLowerCase(), value: q.value };
  }
  const value = TOKEN.exec(cursor.text.slice(cursor.at))?.[0];
  if (value === undefined) throw new Error(`parameter ${name} has no value`);
  cursor.at += value.length;
  return { name: name.toLowerCase(), value };
}

/** The challenges of a WWW-Authenticate value (several may be listed, comma-separated); [] for anything malformed. */
export function parseChallenges(header: string): Challenge[] {
  if (header.length > MAX_HEADER_CHARS) return [];
  const cursor: Cursor = { text: header, at: 0 };
  const challenges: { scheme: string; params: Map<string, string> }[] = [];
  try {
    while (cursor.at < header.length) {
      skipSpaces(cursor);
      if (header[cursor.at] === ',') {
        cursor.at++;
        continue;
      }
      const p = challenges.length === 0 ? undefined : param(cursor);
      if (p !== undefined) {
        challenges[challenges.length - 1]!.params.set(p.name, p.value);
        continue;
      }
      const scheme = TOKEN.exec(header.slice(cursor.at))?.[0];
      if (scheme === undefined) return [];
      cursor.at += scheme.length;
      challenges.push({ scheme: scheme.toLowerCase(), params: new Map() });
      skipSpaces(cursor);
      const first = param(cursor);
      if (first !== undefined) challenges[challenges.length - 1]!.params.set(first.name, first.value);
    }
  } catch {
    return [];
  }
  return challenges;
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.username === '' && url.password === '';
  } catch {
    return false;
  }
}

/** The first Bearer challenge with a usable realm among the header's values; undefined when there is none (a Basic one is ignored). */
export function bearerChallenge(values: string | readonly string[] | undefined): BearerChallenge | undefined {
  for (const value of typeof values === 'string' ? [values] : (values ?? [])) {
    for (const challenge of parseChallenges(value)) {
      const realm = challenge.params.get('realm');
      if (challenge.scheme !== 'bearer' || realm === undefined || !isHttpUrl(realm)) continue;
      const error = challenge.params.get('error');
      return { realm, service: challenge.params.get('service'), scope: challenge.params.get('scope'), ...(error === undefined ? {} : { error }) };
    }
  }
  return undefined;
}

function quote(value: string): string {
  return `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** The header value of a Bearer challenge. */
export function formatBearerChallenge(challenge: BearerChallenge): string {
  const parts = [`realm=${quote(challenge.realm)}`];
  if (challenge.service !== undefined) parts.push(`service=${quote(challenge.service)}`);
  if (challenge.scope !== undefined) parts.push(`scope=${quote(challenge.scope)}`);
  if (challenge.error !== undefined) parts.push(`error=${quote(challenge.error)}`);
  return `Bearer ${parts.join(',')}`;
}

/** The scope a token must grant to pull from `repository` (the registry token spec's resource scope). */
export function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}
