// Whether a request of containerd's for a registry listed in
// --verify-pull-access may be served (issue 15): only when it proves read
// access to its repository at the registry itself.
//
// - No Authorization: the registry is asked anonymously (cached 5 min per
//   repository). A public repository is served as any other; one that wants a
//   token gets the registry's own Bearer challenge for that repository, so
//   containerd fetches a token from the registry's token service with the
//   pod's pull secret and comes back with it.
// - Authorization: Bearer: the token is checked with one HEAD at the registry
//   and the verdict cached by the token's SHA-256 and the repository: a yes
//   until the token's `exp` (at most 5 min), a no for 30 s. Concurrent
//   requests with one token share one check (a pull's blobs).
// - A token the registry refuses: deny, with the registry's challenge again
//   (a 401, as the registry answers it, so containerd's error is the same).
// - Anything else (Basic credentials, a malformed header, the registry
//   unreachable, an error): deny. The caller answers 404 and serves nothing;
//   containerd goes to the registry, which decides as it would without mirra.
//
// Tokens live in memory only as a hash; they are never logged or sent
// anywhere but to the registry they are for.
import { createHash } from 'node:crypto';
import { isRecord } from '../json/narrow.ts';
import { createSingleFlight } from '../sync/single-flight.ts';
import { formatBearerChallenge, pullScope } from './challenge.ts';
import type { Anonymous, ProbeTarget, UpstreamProbe, Verdict } from './upstream.ts';

export interface PullRequestInfo {
  /** The registry (the request's `ns`), e.g. ghcr.io. */
  readonly registry: string;
  readonly repository: string;
  readonly kind: 'manifests' | 'blobs';
  readonly reference: string;
  /** The request's Authorization header, if any. */
  readonly authorization: string | undefined;
}

export type Decision =
  /** The registry is not one whose access is verified. */
  | { readonly kind: 'open' }
  | { readonly kind: 'allow' }
  /** Answer 401 with this WWW-Authenticate value. */
  | { readonly kind: 'challenge'; readonly header: string }
  /** Serve nothing: a 404, or with `challenge` (the registry refused the token) a 401 with it, as the registry itself answers. */
  | { readonly kind: 'deny'; readonly reason: string; readonly challenge?: string };

export interface PullGate {
  decide(request: PullRequestInfo): Promise<Decision>;
  /** Whether a registry's access is verified (peers serve its content only to verified requests). */
  verifies(registry: string): boolean;
}

export interface PullGateOptions {
  /** Registry name -> its base URL (https://ghcr.io, or http://host:port for a plain-http one). */
  registries: ReadonlyMap<string, string>;
  probe: UpstreamProbe;
  now?: () => number;
}

/** How long a repository's anonymous answer (public, or its challenge) is kept. */
const ANONYMOUS_TTL_MS = 5 * 60_000;
/** A token's yes is kept until its exp, at most this long. */
const ALLOWED_TTL_MS = 5 * 60_000;
/** A token's no is kept this long. */
const DENIED_TTL_MS = 30_000;
/** Entries of each cache at most (the oldest go first). */
const MAX_ENTRIES = 10_000;
/** A bearer token longer than this is refused without asking the registry. */
const MAX_TOKEN_CHARS = 8192;
const BEARER = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/;

interface Entry<T> {
  value: T;
  expiresAt: number;
}

function remember<T>(cache: Map<string, Entry<T>>, key: string, entry: Entry<T>): void {
  cache.delete(key);
  if (cache.size >= MAX_ENTRIES) cache.delete(cache.keys().next().value!);
  cache.set(key, entry);
}

function fresh<T>(cache: Map<string, Entry<T>>, key: string, now: number): T | undefined {
  const entry = cache.get(key);
  if (entry === undefined) return undefined;
  if (entry.expiresAt > now) return entry.value;
  cache.delete(key);
  return undefined;
}

/** The `exp` of a JWT, read without checking it (only to bound how long a yes is kept); undefined for any other token. */
export function tokenExpiryMs(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    const exp = isRecord(claims) ? claims.exp : undefined;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

interface GateState {
  readonly options: PullGateOptions;
  readonly now: () => number;
  readonly anonymous: Map<string, Entry<Anonymous>>;
  readonly verdicts: Map<string, Entry<Verdict>>;
  readonly anonymousFlight: ReturnType<typeof createSingleFlight<Anonymous>>;
  readonly verdictFlight: ReturnType<typeof createSingleFlight<Verdict>>;
}

async function askAnonymous(state: GateState, target: ProbeTarget, key: string): Promise<Anonymous> {
  const cached = fresh(state.anonymous, key, state.now());
  if (cached !== undefined) return cached;
  return state.anonymousFlight.run(key, async () => {
    const answer = await state.options.probe.anonymous(target);
    if (answer.kind !== 'unavailable') remember(state.anonymous, key, { value: answer, expiresAt: state.now() + ANONYMOUS_TTL_MS });
    return answer;
  });
}

async function askVerdict(state: GateState, target: ProbeTarget, token: string): Promise<Verdict> {
  const key = `${createHash('sha256').update(token).digest('base64url')} ${target.server} ${target.repository}`;
  const cached = fresh(state.verdicts, key, state.now());
  if (cached !== undefined) return cached;
  return state.verdictFlight.run(key, async () => {
    const verdict = await state.options.probe.verify(target, token);
    const now = state.now();
    if (verdict.kind === 'allowed') {
      const expiresAt = Math.min(now + ALLOWED_TTL_MS, tokenExpiryMs(token) ?? Infinity);
      if (expiresAt > now) remember(state.verdicts, key, { value: verdict, expiresAt });
    } else if (verdict.kind === 'denied') remember(state.verdicts, key, { value: verdict, expiresAt: now + DENIED_TTL_MS });
    return verdict;
  });
}

async function withoutToken(state: GateState, target: ProbeTarget): Promise<Decision> {
  const answer = await askAnonymous(state, target, `${target.server} ${target.repository}`);
  if (answer.kind === 'public') return { kind: 'allow' };
  if (answer.kind === 'unavailable') return { kind: 'deny', reason: `the registry could not be asked: ${answer.reason}` };
  return { kind: 'challenge', header: formatBearerChallenge({ ...answer.challenge, scope: pullScope(target.repository) }) };
}

/**
 * A token the registry refused: the registry's own challenge for it again,
 * with its `error` (invalid_token, insufficient_scope), so that containerd
 * gives up on this host as on the registry ("pull access denied"; a 404
 * here would rank above that among its hosts' errors and turn it into "not
 * found", and a challenge without `error` makes it try again).
 */
async function refused(state: GateState, target: ProbeTarget, verdict: Extract<Verdict, { kind: 'denied' }>): Promise<Decision> {
  const reason = `the registry refused the token (${verdict.status})`;
  const scope = pullScope(target.repository);
  if (verdict.challenge !== undefined) return { kind: 'deny', reason, challenge: formatBearerChallenge({ ...verdict.challenge, scope }) };
  const again = await askAnonymous(state, target, `${target.server} ${target.repository}`);
  if (again.kind !== 'challenge') return { kind: 'deny', reason };
  return { kind: 'deny', reason, challenge: formatBearerChallenge({ ...again.challenge, scope, error: 'insufficient_scope' }) };
}

async function decide(state: GateState, request: PullRequestInfo): Promise<Decision> {
  const server = state.options.registries.get(request.registry);
  if (server === undefined) return { kind: 'open' };
  const target: ProbeTarget = { server, repository: request.repository, kind: request.kind, reference: request.reference };
  if (request.authorization === undefined) return withoutToken(state, target);
  const match = request.authorization.length <= MAX_TOKEN_CHARS + 7 ? BEARER.exec(request.authorization) : null;
  if (match === null) return { kind: 'deny', reason: 'not a Bearer token' };
  const verdict = await askVerdict(state, target, match[1]!);
  if (verdict.kind === 'allowed') return { kind: 'allow' };
  if (verdict.kind === 'denied') return refused(state, target, verdict);
  return { kind: 'deny', reason: `the registry could not check the token: ${verdict.reason}` };
}

export function createPullGate(options: PullGateOptions): PullGate {
  const state: GateState = {
    options,
    now: options.now ?? Date.now,
    anonymous: new Map(),
    verdicts: new Map(),
    anonymousFlight: createSingleFlight<Anonymous>(),
    verdictFlight: createSingleFlight<Verdict>(),
  };
  return {
    decide: (request) => decide(state, request),
    verifies: (registry) => options.registries.has(registry),
  };
}
