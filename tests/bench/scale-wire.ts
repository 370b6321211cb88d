// bench:scale's wire overhead: the HTTP bytes around a push and a lookup,
// measured once on real requests. The real owner client (signed, as with peer
// auth on) talks to a real registry app with a real owner service through a
// TCP relay that counts the bytes each way; the headers are what is left
// after the bodies. Pod names are 11 characters (`mirra-xxxxx`) as in a
// DaemonSet.
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Server } from 'node:net';
import { createPeerSigner } from '../../internal/auth/sign.ts';
import { createPeerVerifier } from '../../internal/auth/verify.ts';
import { createOwnerClient } from '../../internal/owners/client.ts';
import { createOwnerService } from '../../internal/owners/owner.ts';
import { encodeEntries, type IndexEntry } from '../../internal/owners/protocol.ts';
import { createPeerAgent } from '../../internal/peer/client.ts';
import type { Hasher } from '../../internal/routing/hash.ts';
import { digestOf } from '../../internal/routing/owner-store.ts';
import { createTestApp, listen } from '../support/registry/testkit.ts';

export interface WireOverhead {
  /** Request line and headers of a push (signed, with content-type and length). */
  pushRequestHeaders: number;
  /** Request line and headers of a lookup, without the path (which varies). */
  lookupRequestHeaders: number;
  /** Status line and headers of an owner's JSON answer. */
  answerHeaders: number;
}

interface Relay {
  port: number;
  up: number;
  down: number;
  server: Server;
}

async function startRelay(targetPort: number): Promise<Relay> {
  const relay: Relay = { port: 0, up: 0, down: 0, server: createServer() };
  relay.server.on('connection', (client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    client.on('data', (chunk: Buffer) => (relay.up += chunk.length));
    upstream.on('data', (chunk: Buffer) => (relay.down += chunk.length));
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => relay.server.listen(0, '127.0.0.1', resolve));
  const address = relay.server.address();
  relay.port = typeof address === 'object' && address !== null ? address.port : 0;
  return relay;
}

export async function measureWireOverhead(hasher: Hasher): Promise<WireOverhead> {
  const key = randomBytes(32);
  const owner = createOwnerService({ hasher, warmMs: 0, graceMs: 60_000, member: () => ({ ready: true, zone: 'zone-0' }) });
  const { app } = createTestApp({ indexOwner: owner, peerVerifier: createPeerVerifier({ keys: [key], audience: 'mirra-owner' }) });
  const base = await listen(app);
  const relay = await startRelay(Number(new URL(base).port));
  const agent = createPeerAgent();
  const client = createOwnerClient({ self: 'mirra-abcde', agent, sign: createPeerSigner({ key, self: 'mirra-abcde' }), pushTimeoutMs: 5000 });
  const target = { name: 'mirra-owner', url: `http://127.0.0.1:${relay.port}` };
  try {
    const keys = [1, 2, 3, 4, 5, 6, 7, 8];
    const entries: IndexEntry[] = [{ shard: 3, op: 'full', keys, digest: digestOf(new Set(keys)) }];
    const answer = await client.push(target, entries);
    const push = { up: relay.up, down: relay.down };
    const pushBody = encodeEntries(entries).length;
    const pushAnswer = Buffer.byteLength(JSON.stringify(answer));
    relay.up = 0;
    relay.down = 0;
    const holders = await client.holders(target, { key: 1, zone: 'zone-0', timeoutMs: 5000 });
    const lookupPath = `/mirra/v1/holders/00000000000001?from=mirra-abcde&zone=zone-0`.length;
    return {
      pushRequestHeaders: push.up - pushBody,
      lookupRequestHeaders: relay.up - lookupPath,
      answerHeaders: Math.round((push.down - pushAnswer + relay.down - Buffer.byteLength(JSON.stringify(holders))) / 2),
    };
  } finally {
    agent.destroy();
    relay.server.close();
    await app.close();
  }
}
