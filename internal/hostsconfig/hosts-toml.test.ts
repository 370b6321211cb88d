import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse as parseToml } from 'smol-toml';
import { prependToExisting, renderHostsToml, splitHostsToml, upstreamServer } from './hosts-toml.ts';

/** Plain objects (smol-toml makes null-prototype tables). */
function parse(text: string): Record<string, unknown> {
  return JSON.parse(JSON.stringify(parseToml(text))) as Record<string, unknown>;
}

const pullResolve = ['pull', 'resolve'] as const;

test('renders server, then one host table per mirror in order', () => {
  const text = renderHostsToml({
    server: 'https://registry-1.docker.io',
    mirrors: [
      { url: 'http://127.0.0.1:5000', capabilities: [...pullResolve] },
      { url: 'http://127.0.0.2:5000', capabilities: ['pull'] },
    ],
  });
  assert.equal(
    text,
    'server = "https://registry-1.docker.io"\n\n[host."http://127.0.0.1:5000"]\n  capabilities = ["pull", "resolve"]\n\n[host."http://127.0.0.2:5000"]\n  capabilities = ["pull"]\n',
  );
});

test('header comments come first; no server line without a server', () => {
  const text = renderHostsToml({ mirrors: [{ url: 'http://a:1', capabilities: ['pull'] }], header: ['managed by mirra'] });
  assert.ok(text.startsWith('# managed by mirra\n'));
  assert.doesNotMatch(text, /server/);
  assert.deepEqual(parse(text), { host: { 'http://a:1': { capabilities: ['pull'] } } });
});

test('upstream server: docker.io is registry-1.docker.io; the scheme is kept', () => {
  assert.equal(upstreamServer('docker.io'), 'https://registry-1.docker.io');
  assert.equal(upstreamServer('ghcr.io'), 'https://ghcr.io');
  assert.equal(upstreamServer('127.0.0.1:5000', 'http'), 'http://127.0.0.1:5000');
});

const existing = `# the team's mirror
server = "https://registry-1.docker.io"
ca = "/etc/certs/ca.pem"

[header]
  x-team = "a"

[host."https://mirror.example.com"]
  capabilities = ["pull"]
  [host."https://mirror.example.com".header]
    authorization = "Basic eA=="

[host.'http://127.0.0.1:30020']
  capabilities = ["pull", "resolve"]
`;

test('split keeps every byte and finds each host with its sub-tables', () => {
  const split = splitHostsToml(existing);
  assert.equal(split.top + split.hosts.map((h) => h.text).join(''), existing);
  assert.deepEqual(
    split.hosts.map((h) => h.url),
    ['https://mirror.example.com', 'http://127.0.0.1:30020'],
  );
  assert.match(split.hosts[0]?.text ?? '', /authorization/);
  assert.match(split.top, /\[header\]/);
});

test('prepend: our hosts first, the existing ones after (a duplicate of ours dropped), the existing top part kept', () => {
  const text = prependToExisting(existing, {
    server: 'https://ignored.example.com',
    mirrors: [{ url: 'http://127.0.0.1:30020/', capabilities: ['pull'] }],
    header: ['managed by mirra'],
  });
  assert.ok(text.startsWith('# managed by mirra\n'));
  const parsed = parse(text);
  assert.equal(parsed.server, 'https://registry-1.docker.io');
  assert.equal(parsed.ca, '/etc/certs/ca.pem');
  assert.deepEqual(parsed.header, { 'x-team': 'a' });
  const hosts = parsed.host as Record<string, { capabilities: string[] }>;
  assert.deepEqual(Object.keys(hosts), ['http://127.0.0.1:30020/', 'https://mirror.example.com']);
  assert.ok(text.indexOf('http://127.0.0.1:30020') < text.indexOf('mirror.example.com'), 'ours is first in the file (containerd orders by position)');
  assert.deepEqual(hosts['http://127.0.0.1:30020/']?.capabilities, ['pull']);
});

test('prepend onto a file without server uses ours', () => {
  const text = prependToExisting('[host."https://m.example.com"]\n  capabilities = ["pull"]\n', {
    server: 'https://ghcr.io',
    mirrors: [{ url: 'http://127.0.0.1:1', capabilities: [...pullResolve] }],
  });
  const parsed = parse(text);
  assert.equal(parsed.server, 'https://ghcr.io');
  assert.deepEqual(Object.keys(parsed.host as object), ['http://127.0.0.1:1', 'https://m.example.com']);
});
