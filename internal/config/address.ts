// Listen addresses: `host:port`, `:port` (all interfaces) or `[v6]:port`.

export interface ListenAddress {
  host: string;
  port: number;
}

export function parseListenAddress(raw: string): ListenAddress {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(raw.trim());
  if (match === null) throw new Error('want host:port, :port or [ipv6]:port');
  const port = Number(match[3]);
  if (port > 65535) throw new Error('port must be at most 65535');
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

export function formatListenAddress(address: ListenAddress): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
