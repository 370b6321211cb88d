// Which client addresses may make the ordinary (unsigned, unmarked) requests
// that containerd on the node makes. Those requests may be answered from
// other nodes' content, so an agent that answered them for anyone would be an
// open cache of every mirrored image in the cluster. With --local-only they
// are answered only from loopback, the node's own IP and any extra addresses
// or CIDRs given (a CNI that shows the node's traffic from a bridge address).
import { BlockList, isIP } from 'node:net';

export const LOOPBACK_RANGES = ['127.0.0.0/8', '::1/128'] as const;

export interface AddressAllowList {
  /** True when `address` (as in socket.remoteAddress) is on the list; false for undefined. */
  allows(address: string | undefined): boolean;
  /** The entries, normalised, for logs. */
  readonly entries: readonly string[];
}

/** `::ffff:10.0.0.1` -> `10.0.0.1`; `fe80::1%eth0` -> `fe80::1`. */
export function normalizeAddress(address: string): string {
  const bare = address.replace(/%.*$/, '');
  const mapped = /^::ffff:([0-9.]+)$/i.exec(bare);
  return mapped?.[1] !== undefined && isIP(mapped[1]) === 4 ? mapped[1] : bare;
}

interface ParsedEntry {
  network: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** An IP address or a CIDR (`10.0.0.0/8`, `fd00::/64`); throws a one-line reason when it is neither. */
export function parseAddressEntry(raw: string): ParsedEntry {
  const [address = '', prefixText, ...rest] = raw.trim().split('/');
  const network = normalizeAddress(address);
  const version = isIP(network);
  if (version === 0 || rest.length > 0) throw new Error(`${JSON.stringify(raw)} is not an IP address or CIDR`);
  const bits = version === 4 ? 32 : 128;
  let prefix = bits;
  if (prefixText !== undefined) {
    if (!/^[0-9]{1,3}$/.test(prefixText) || Number(prefixText) > bits) throw new Error(`${JSON.stringify(raw)}: prefix length must be 0-${bits}`);
    prefix = Number(prefixText);
  }
  return { network, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

export function createAddressAllowList(entries: readonly string[]): AddressAllowList {
  const list = new BlockList();
  const normalised: string[] = [];
  for (const raw of entries) {
    const entry = parseAddressEntry(raw);
    list.addSubnet(entry.network, entry.prefix, entry.family);
    normalised.push(`${entry.network}/${entry.prefix}`);
  }
  return {
    entries: normalised,
    allows(address) {
      if (address === undefined) return false;
      const bare = normalizeAddress(address);
      const version = isIP(bare);
      if (version === 0) return false;
      return list.check(bare, version === 4 ? 'ipv4' : 'ipv6');
    },
  };
}

/** The --local-only list: loopback, the node IP (when known) and the extra entries. */
export function localClientAllowList(nodeIp: string, extra: readonly string[]): AddressAllowList {
  return createAddressAllowList([...LOOPBACK_RANGES, ...(nodeIp === '' ? [] : [nodeIp]), ...extra]);
}
