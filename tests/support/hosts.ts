// A node's containerd hosts dir as the harness, tests and demo use it: one
// plain-http upstream registry, one agent as its mirror (pull and resolve),
// or the upstream alone.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderHostsToml } from '../../internal/hostsconfig/hosts-toml.ts';

/** Writes `<hostsDir>/<upstreamHost>/hosts.toml`: the agent first, `http://<upstreamHost>` as server. */
export async function writeMirrorHosts(hostsDir: string, upstreamHost: string, agentUrl: string): Promise<void> {
  await mkdir(join(hostsDir, upstreamHost), { recursive: true });
  await writeFile(
    join(hostsDir, upstreamHost, 'hosts.toml'),
    renderHostsToml({ server: `http://${upstreamHost}`, mirrors: [{ url: agentUrl, capabilities: ['pull', 'resolve'] }] }),
  );
}

/** Writes `<hostsDir>/<upstreamHost>/hosts.toml` with the upstream alone (`http://<upstreamHost>`): no mirror. */
export async function writeUpstreamHosts(hostsDir: string, upstreamHost: string): Promise<void> {
  await mkdir(join(hostsDir, upstreamHost), { recursive: true });
  await writeFile(join(hostsDir, upstreamHost, 'hosts.toml'), renderHostsToml({ server: `http://${upstreamHost}`, mirrors: [] }));
}
