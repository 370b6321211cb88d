// containerd's registry host configuration (certs.d/<registry>/hosts.toml):
// the mirrors are tried in order, then `server`, the registry itself.
//
// containerd orders the `[host."..."]` tables by their position in the file,
// so keeping an existing file's hosts after ours is a textual operation:
// the file is split into its top part (server, ca, [header], ...) and one
// section per host (the `[host."URL"]` table and its sub-tables).

export type Capability = 'pull' | 'resolve' | 'push';

export interface MirrorHost {
  /** Base URL of the mirror, e.g. http://127.0.0.1:5000 */
  url: string;
  capabilities: Capability[];
}

/**
 * The upstream URL containerd uses for a registry host when no mirror answers:
 * docker.io is served by registry-1.docker.io; the scheme defaults to https.
 */
export function upstreamServer(registry: string, scheme: 'http' | 'https' = 'https'): string {
  if (registry === 'docker.io') return `${scheme}://registry-1.docker.io`;
  return `${scheme}://${registry}`;
}

function quote(value: string): string {
  return JSON.stringify(value);
}

/** One `[host."URL"]` table (with its capabilities) per mirror, in order. */
export function renderHostSections(mirrors: MirrorHost[]): string {
  return mirrors.map((mirror) => `[host.${quote(mirror.url)}]\n  capabilities = [${mirror.capabilities.map(quote).join(', ')}]\n`).join('\n');
}

/**
 * A whole hosts.toml. Without `server` (the `_default` file) containerd uses
 * the registry that is being pulled from as the fallback. `header` lines are
 * written first as comments.
 */
export function renderHostsToml(options: { server?: string; mirrors: MirrorHost[]; header?: string[] }): string {
  const parts: string[] = [];
  const top = (options.header ?? []).map((line) => `# ${line}`);
  if (options.server !== undefined) top.push(`server = ${quote(options.server)}`);
  if (top.length > 0) parts.push(`${top.join('\n')}\n`);
  if (options.mirrors.length > 0) parts.push(renderHostSections(options.mirrors));
  return parts.join('\n');
}

export interface HostSection {
  /** The host URL as written in the table header. */
  url: string;
  /** The section's text: its header line through the line before the next host's header. */
  text: string;
}

export interface SplitHostsToml {
  /** Everything before the first `[host."..."]` table (server, ca, top-level [header], comments). */
  top: string;
  hosts: HostSection[];
}

const HOST_HEADER = /^\s*\[\s*host\s*\.\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*(\]|\.)/;

function hostKey(raw: string): string {
  if (raw.startsWith('"')) {
    const parsed: unknown = JSON.parse(raw);
    return typeof parsed === 'string' ? parsed : raw;
  }
  if (raw.startsWith("'")) return raw.slice(1, -1);
  return raw;
}

/** Splits a hosts.toml into its top part and its host sections, keeping every byte. */
export function splitHostsToml(text: string): SplitHostsToml {
  const lines = text.split(/(?<=\n)/);
  const top: string[] = [];
  const hosts: HostSection[] = [];
  let current: { url: string; lines: string[] } | undefined;
  const flush = (): void => {
    if (current !== undefined) hosts.push({ url: current.url, text: current.lines.join('') });
  };
  for (const line of lines) {
    const match = HOST_HEADER.exec(line);
    const url = match?.[1] === undefined ? undefined : hostKey(match[1]);
    if (url !== undefined && url !== current?.url) {
      flush();
      current = { url, lines: [line] };
    } else if (current !== undefined) {
      current.lines.push(line);
    } else {
      top.push(line);
    }
  }
  flush();
  return { top: top.join(''), hosts };
}

function normalizeUrl(url: string): string {
  return url.replace(/\/+$/, '').toLowerCase();
}

/**
 * Our mirrors first, then the existing file's own hosts (except those that are
 * one of our mirrors), then nothing else: the existing top part (its server,
 * ca, headers) is kept unless the existing file has none, when `server` is used.
 */
export function prependToExisting(existing: string, options: { server?: string; mirrors: MirrorHost[]; header?: string[] }): string {
  const { top, hosts } = splitHostsToml(existing);
  const ours = new Set(options.mirrors.map((mirror) => normalizeUrl(mirror.url)));
  const kept = hosts.filter((host) => !ours.has(normalizeUrl(host.url)));
  const hasServer = /^\s*server\s*=/m.test(top);
  const head = renderHostsToml({
    server: hasServer ? undefined : options.server,
    mirrors: [],
    header: options.header,
  });
  const topText = top.trimEnd();
  const parts = [head.trimEnd(), topText, renderHostSections(options.mirrors).trimEnd(), ...kept.map((host) => host.text.trimEnd())];
  return `${parts.filter((part) => part.length > 0).join('\n\n')}\n`;
}
