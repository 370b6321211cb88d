// A Docker registry token service for tests of private images (issue 15):
// the realm a docker-registry with `auth: token` sends clients to ("Docker
// Registry v2 token authentication"). It checks HTTP Basic credentials (or
// the OAuth2 password grant containerd POSTs first) against a table of users
// and the repositories they may pull or push, and issues JWTs signed RS256
// whose header carries the signing certificate (`x5c`, base64 DER), as
// distribution 2.8 (registry/auth/token/token.go) needs to find the key: the
// certificate is self-signed and is the registry's whole `rootcertbundle`.
// Claims as 2.8 reads them: iss, sub, aud (one string: an array fails to
// parse), exp, nbf, iat, jti, access [{ type, name, actions }]; the registry
// allows 60 s of leeway on exp and nbf. Anonymous requests get a token that
// allows nothing, as real token services answer. Tests can also mint tokens
// directly (expired, not yet valid, any access) and forge some with a key the
// registry does not trust; every request is recorded.
import { createPrivateKey, randomUUID, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { isRecord } from '../../internal/json/narrow.ts';
import { openssl } from './pki.ts';
import type { RegistryTokenAuth } from './upstream.ts';

export interface TokenUser {
  password: string;
  /** Repositories the user may pull: exact names, `prefix/*` (every name under prefix/), or `*`. */
  pull: readonly string[];
  /** Repositories the user may push to, same patterns. Default none. */
  push?: readonly string[];
}

export interface TokenServiceOptions {
  /** Where the signing key and certificates are written (must exist). */
  dir: string;
  /** User name -> password and repositories. */
  users?: Readonly<Record<string, TokenUser>>;
  /** Lifetime of issued tokens in seconds. Default 300. */
  lifetimeSec?: number;
  /** The `iss` claim, the registry's `issuer`. Default 'mirra-test-token-service'. */
  issuer?: string;
  /** The `aud` claim, the registry's `service`. Default 'mirra-test-registry'. */
  service?: string;
  /**
   * Answer POST /token (OAuth2 password grant, what containerd tries first when
   * it has credentials). Default true; false answers 404, as GCR does, and
   * containerd falls back to GET with Basic credentials.
   */
  oauthPost?: boolean;
}

/** One `access` entry of a token's claims. */
export interface TokenAccess {
  type: string;
  name: string;
  actions: string[];
}

export interface MintOptions {
  /** `sub`. Default ''. */
  subject?: string;
  /** Default: no access. */
  access?: readonly TokenAccess[];
  /** `exp` relative to now, in seconds; negative for an expired token. Default: the lifetime. */
  expiresInSec?: number;
  /** `nbf` relative to now, in seconds. Default 0. */
  notBeforeSec?: number;
  /** `aud`. Default: the service. */
  audience?: string;
  /** `iss`. Default: the issuer. */
  issuer?: string;
}

/** A request the token service answered. */
export interface TokenRequest {
  method: string;
  path: string;
  /** The `service` asked for (query or form). */
  service: string | undefined;
  /** Every scope asked for, in order (repeated `scope` params and space-separated lists alike). */
  scopes: string[];
  account: string | undefined;
  /** The user the credentials named (right or wrong: see status); undefined for an anonymous request. */
  user: string | undefined;
  /** POST only: grant_type and client_id of the form. */
  grantType: string | undefined;
  clientId: string | undefined;
  status: number;
  /** What the issued token allows; empty when it allows nothing or none was issued. */
  granted: TokenAccess[];
}

export interface TokenService {
  /** http://127.0.0.1:PORT */
  url: string;
  /** `${url}/token`: the registry's realm. */
  realm: string;
  issuer: string;
  service: string;
  /** PEM file with the one trusted certificate: the registry's rootcertbundle. */
  rootCertBundlePath: string;
  /** What startUpstream's tokenAuth option takes. */
  registryAuth: RegistryTokenAuth;
  /** A token signed with the trusted key. */
  mint(options?: MintOptions): string;
  /** A token like mint's, signed with a key (and self-signed certificate in x5c) the registry does not trust. */
  mintForged(options?: MintOptions): string;
  requests(): TokenRequest[];
  resetRequests(): void;
  stop(): Promise<void>;
}

/** A signing key with its certificate chain as the JWT header's x5c. */
interface Signer {
  key: KeyObject;
  x5c: string[];
  certPath: string;
}

/** An RSA 2048 key and a self-signed certificate for it (dir/name.key, dir/name.crt), valid one day. */
async function createSigner(dir: string, name: string, subject: string): Promise<Signer> {
  const keyPath = join(dir, `${name}.key`);
  const certPath = join(dir, `${name}.crt`);
  const args = ['req', '-x509', '-config', '/dev/null', '-newkey', 'rsa:2048', '-noenc', '-days', '1', '-subj', subject];
  args.push('-keyout', keyPath, '-out', certPath, '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'keyUsage=critical,digitalSignature');
  await openssl(args);
  const [keyPem, certPem] = await Promise.all([readFile(keyPath, 'utf8'), readFile(certPath, 'utf8')]);
  return { key: createPrivateKey(keyPem), x5c: [new X509Certificate(certPem).raw.toString('base64')], certPath };
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** The claims of a token, times in whole seconds since the epoch. */
interface Claims {
  iss: string;
  sub: string;
  aud: string;
  exp: number;
  nbf: number;
  iat: number;
  jti: string;
  access: TokenAccess[];
}

/** Compact JWS: base64url(header).base64url(claims).base64url(RSASSA-PKCS1-v1_5 SHA-256 signature). */
function encodeJwt(signer: Signer, claims: Claims): string {
  const input = `${base64url({ typ: 'JWT', alg: 'RS256', x5c: signer.x5c })}.${base64url(claims)}`;
  return `${input}.${sign('sha256', Buffer.from(input), signer.key).toString('base64url')}`;
}

/** The header and claims of a JWT, parsed but not verified (for assertions). */
export function decodeJwt(token: string): { header: unknown; claims: unknown } {
  const [header, claims, signature] = token.split('.');
  if (header === undefined || claims === undefined || signature === undefined) throw new Error('not a compact JWS');
  const parse = (part: string): unknown => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  return { header: parse(header), claims: parse(claims) };
}

/** `type[(class)]:name:action[,action...]`; the name may hold colons (a port), the actions never do. */
function parseScope(scope: string): TokenAccess | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  const type = scope.slice(0, first).replace(/\(.*\)$/, '');
  const actions = scope
    .slice(last + 1)
    .split(',')
    .filter((action) => action !== '');
  return { type, name: scope.slice(first + 1, last), actions };
}

function matches(patterns: readonly string[] | undefined, name: string): boolean {
  return (patterns ?? []).some((pattern) => pattern === '*' || pattern === name || (pattern.endsWith('/*') && name.startsWith(pattern.slice(0, -1))));
}

/** What `user` may do of what the scopes ask: repository pull and push only; nothing for anonymous. */
function grant(user: TokenUser | undefined, scopes: readonly string[]): TokenAccess[] {
  const granted: TokenAccess[] = [];
  for (const scope of scopes) {
    const asked = parseScope(scope);
    if (user === undefined || asked === undefined || asked.type !== 'repository') continue;
    const actions = asked.actions.filter(
      (action) => (action === 'pull' && matches(user.pull, asked.name)) || (action === 'push' && matches(user.push, asked.name)),
    );
    if (actions.length > 0) granted.push({ type: 'repository', name: asked.name, actions: [...new Set(actions)] });
  }
  return granted;
}

/** The user and password of `Authorization: Basic` (user undefined without the header); 'malformed' for anything else. */
function basicCredentials(header: string | undefined): { user: string | undefined; password: string } | 'malformed' {
  if (header === undefined || header === '') return { user: undefined, password: '' };
  const match = /^Basic\s+(\S+)$/i.exec(header);
  if (match?.[1] === undefined) return 'malformed';
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return 'malformed';
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** What a token request asked for, from the query (GET) or the form (POST). */
interface TokenAsk {
  params: URLSearchParams;
  user: string | undefined;
  password: string;
  malformedAuth: boolean;
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

/** Service state shared by the request handler and the returned methods. */
interface State {
  users: Readonly<Record<string, TokenUser>>;
  lifetimeSec: number;
  issuer: string;
  service: string;
  oauthPost: boolean;
  signer: Signer;
  forger: Signer;
  realm: string;
  log: TokenRequest[];
}

function mintWith(state: State, signer: Signer, options: MintOptions): string {
  const now = Math.floor(Date.now() / 1000);
  return encodeJwt(signer, {
    iss: options.issuer ?? state.issuer,
    sub: options.subject ?? '',
    aud: options.audience ?? state.service,
    exp: now + (options.expiresInSec ?? state.lifetimeSec),
    nbf: now + (options.notBeforeSec ?? 0),
    iat: now,
    jti: randomUUID(),
    access: (options.access ?? []).map((entry) => ({ type: entry.type, name: entry.name, actions: [...entry.actions] })),
  });
}

/** GET: query params and Basic credentials. POST: the OAuth2 form (grant_type=password carries the credentials). */
async function readAsk(req: IncomingMessage, url: URL): Promise<TokenAsk> {
  if (req.method === 'POST') {
    const params = await readForm(req);
    const user = params.get('grant_type') === 'password' ? (params.get('username') ?? undefined) : undefined;
    return { params, user, password: params.get('password') ?? '', malformedAuth: false };
  }
  const basic = basicCredentials(req.headers.authorization);
  if (basic === 'malformed') return { params: url.searchParams, user: undefined, password: '', malformedAuth: true };
  return { params: url.searchParams, user: basic.user, password: basic.password, malformedAuth: false };
}

/** A new record for a request: what it asked for, not yet answered. */
function recordFor(req: IncomingMessage, path: string, ask: TokenAsk): TokenRequest {
  const params = ask.params;
  const isPost = req.method === 'POST';
  return {
    method: req.method ?? '',
    path,
    service: params.get('service') ?? undefined,
    scopes: params.getAll('scope').flatMap((scope) => scope.split(' ').filter((s) => s !== '')),
    account: params.get('account') ?? undefined,
    user: ask.user,
    grantType: isPost ? (params.get('grant_type') ?? undefined) : undefined,
    clientId: isPost ? (params.get('client_id') ?? undefined) : undefined,
    status: 0,
    granted: [],
  };
}

const NO_ASK: TokenAsk = { params: new URLSearchParams(), user: undefined, password: '', malformedAuth: false };

/** Answers one token request and records it. */
async function handle(state: State, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://token-service');
  const isPost = req.method === 'POST';
  const served = url.pathname === '/token' && (req.method === 'GET' || (isPost && state.oauthPost));
  const ask = served ? await readAsk(req, url) : NO_ASK;
  const record = recordFor(req, url.pathname, ask);
  state.log.push(record);
  const reply = (status: number, body: unknown, headers?: Record<string, string>): void => {
    record.status = status;
    send(res, status, body, headers);
  };
  if (!served) return reply(404, { errors: [{ code: 'NOT_FOUND', message: 'no such endpoint' }] });
  if (isPost && record.grantType !== 'password') return reply(400, { error: 'unsupported_grant_type' });
  if (record.service !== undefined && record.service !== state.service) {
    return reply(400, { errors: [{ code: 'UNSUPPORTED', message: `unknown service ${record.service}` }] });
  }
  const entry = ask.user === undefined ? undefined : state.users[ask.user];
  if (ask.malformedAuth || (ask.user !== undefined && entry?.password !== ask.password)) {
    const body = isPost ? { error: 'invalid_grant' } : { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] };
    return reply(401, body, { 'www-authenticate': `Basic realm=${JSON.stringify(state.realm)}` });
  }
  record.granted = grant(entry, record.scopes);
  const token = mintWith(state, state.signer, { subject: ask.user ?? '', access: record.granted });
  const issuedAt = new Date().toISOString();
  const body = isPost
    ? { access_token: token, token_type: 'Bearer', expires_in: state.lifetimeSec, issued_at: issuedAt, scope: record.scopes.join(' ') }
    : { token, access_token: token, expires_in: state.lifetimeSec, issued_at: issuedAt };
  reply(200, body);
}

/** Starts the token service on 127.0.0.1 (a free port), with a new signing key and certificate in options.dir. */
export async function startTokenService(options: TokenServiceOptions): Promise<TokenService> {
  const [signer, forger] = await Promise.all([
    createSigner(options.dir, 'token-signer', '/CN=mirra-test-token-signer'),
    createSigner(options.dir, 'token-forger', '/CN=mirra-test-token-signer'),
  ]);
  const state: State = {
    users: options.users ?? {},
    lifetimeSec: options.lifetimeSec ?? 300,
    issuer: options.issuer ?? 'mirra-test-token-service',
    service: options.service ?? 'mirra-test-registry',
    oauthPost: options.oauthPost ?? true,
    signer,
    forger,
    realm: '',
    log: [],
  };
  const server = createServer((req, res) => {
    handle(state, req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { errors: [{ code: 'UNKNOWN', message: String(err) }] });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.realm = `${url}/token`;
  const { issuer, service, realm } = state;
  return {
    url,
    realm,
    issuer,
    service,
    rootCertBundlePath: signer.certPath,
    registryAuth: { realm, service, issuer, rootCertBundlePath: signer.certPath },
    mint: (mintOptions = {}) => mintWith(state, signer, mintOptions),
    mintForged: (mintOptions = {}) => mintWith(state, forger, mintOptions),
    requests: () => state.log.map((entry) => ({ ...entry, scopes: [...entry.scopes], granted: entry.granted.map((g) => ({ ...g, actions: [...g.actions] })) })),
    resetRequests: () => {
      state.log = [];
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The `access` claim of a token (for assertions); throws when the token has none or it is malformed. */
export function tokenAccess(token: string): TokenAccess[] {
  const { claims } = decodeJwt(token);
  if (!isRecord(claims) || !Array.isArray(claims.access)) throw new Error('token without an access claim');
  return claims.access.map((entry: unknown) => {
    if (!isRecord(entry) || typeof entry.type !== 'string' || typeof entry.name !== 'string' || !Array.isArray(entry.actions))
      throw new Error('malformed access entry');
    return { type: entry.type, name: entry.name, actions: entry.actions.map(String) };
  });
}
