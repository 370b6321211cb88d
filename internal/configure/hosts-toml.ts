// containerd's registry host configuration (certs.d/<registry>/hosts.toml):
// the mirrors are tried in order, then `server`, the registry itself.

export type Capability = 'pull' | 'resolve' | 'push';

export interface MirrorHost {
  /** Base URL of the mirror, e.g. http://127.0.0.1:5000 */
  url: string;
  capabilities: Capability[];
}

/** The upstream URL containerd uses for a registry host when no mirror answers. */
export function upstreamServer(registry: string): string {
  if (registry === 'docker.io') return 'https://registry-1.docker.io';
  return `https://${registry}`;
}

function quote(value: string): string {
  return JSON.stringify(value);
}

export function renderHostsToml(options: { server: string; mirrors: MirrorHost[] }): string {
  const lines = [`server = ${quote(options.server)}`];
  for (const mirror of options.mirrors) {
    lines.push('', `[host.${quote(mirror.url)}]`, `  capabilities = [${mirror.capabilities.map(quote).join(', ')}]`);
  }
  return `${lines.join('\n')}\n`;
}
