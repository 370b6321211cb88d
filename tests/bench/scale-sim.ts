// bench:scale's simulation: N agents in one process, each with the real
// holder, owner service and locator (internal/owners), the real ownership
// table and, for the measured wave, the real wire codec, over an in-memory
// transport that counts every message and its bytes on the wire (the body
// from the codec plus the HTTP headers measured once on a real request,
// scale-wire.ts).
import { createHolder, type Holder } from '../../internal/owners/holder.ts';
import { createLocator, type Locator } from '../../internal/owners/locator.ts';
import { createOwnerService, type OwnerService } from '../../internal/owners/owner.ts';
import type { OwnershipTable } from '../../internal/owners/ownership.ts';
import {
  decodeEntries,
  encodeEntries,
  HOLDERS_PATH,
  keyHex,
  type HoldersAnswer,
  type HoldersQuery,
  type IndexEntry,
  type PushAnswer,
} from '../../internal/owners/protocol.ts';
import { createLogger } from '../../internal/log/logger.ts';
import type { Hasher } from '../../internal/routing/hash.ts';
import type { WireOverhead } from './scale-wire.ts';

export interface SimAgent {
  readonly name: string;
  readonly zone: string;
  readonly holder: Holder;
  readonly owner: OwnerService;
  readonly locator: Locator;
}

/** Messages and bytes on the wire, by kind. */
export interface Traffic {
  pushes: number;
  pushBytes: number;
  lookups: number;
  lookupBytes: number;
}

export interface Simulation {
  readonly byName: Map<string, SimAgent>;
  readonly traffic: Traffic;
  readonly hasher: Hasher;
  readonly wire: WireOverhead;
  /** Whether pushes go through the codec and are counted (the fill before the wave only sets the state up). */
  measuring: boolean;
  table: OwnershipTable | undefined;
}

const silent = createLogger('silent');
/** No repair round within the simulation. */
const NO_REPAIR_MS = 24 * 3600 * 1000;

function agentNamed(sim: Simulation, name: string): SimAgent {
  const agent = sim.byName.get(name);
  if (agent === undefined) throw new Error(`no agent ${name}`);
  return agent;
}

function push(sim: Simulation, from: string, to: string, entries: readonly IndexEntry[]): PushAnswer {
  const { owner } = agentNamed(sim, to);
  if (!sim.measuring) return { instance: owner.instance, resend: owner.receive(from, entries) };
  const body = encodeEntries(entries);
  const answer = { instance: owner.instance, resend: owner.receive(from, decodeEntries(body)) };
  sim.traffic.pushes++;
  sim.traffic.pushBytes += body.length + sim.wire.pushRequestHeaders + sim.wire.answerHeaders + Buffer.byteLength(JSON.stringify(answer));
  return answer;
}

function lookup(sim: Simulation, from: string, to: string, { key, zone }: HoldersQuery): HoldersAnswer {
  const answer = agentNamed(sim, to).owner.holders(key, zone);
  sim.traffic.lookups++;
  const path = `${HOLDERS_PATH}${keyHex(key)}?from=${from}&zone=${zone ?? ''}`;
  sim.traffic.lookupBytes += path.length + sim.wire.lookupRequestHeaders + sim.wire.answerHeaders + Buffer.byteLength(JSON.stringify(answer));
  return answer;
}

function createAgent(sim: Simulation, name: string, zone: string): SimAgent {
  const { hasher } = sim;
  const member = (other: string): { ready: boolean; zone: string } | undefined => {
    const agent = sim.byName.get(other);
    return agent === undefined ? undefined : { ready: true, zone: agent.zone };
  };
  const owner = createOwnerService({ hasher, warmMs: 0, graceMs: NO_REPAIR_MS, member });
  const holder = createHolder({
    hasher,
    send: async (to, entries) => push(sim, name, to, entries),
    log: silent,
    flushDelayMs: 0,
    repairIntervalMs: NO_REPAIR_MS,
    maxInFlight: 16,
    minRetryMs: 10,
    maxRetryMs: 100,
  });
  const locator = createLocator({
    hasher,
    table: () => sim.table,
    ask: async (to, query) => lookup(sim, name, to, query),
    zone: () => zone,
    hedgeMs: 1000,
    timeoutMs: 1000,
    cacheMs: 2000,
    maxCached: 10_000,
    log: silent,
  });
  return { name, zone, holder, owner, locator };
}

/** A DaemonSet pod's name: `mirra-` and five characters. */
export function podName(i: number): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let suffix = '';
  for (let n = i + 100_000, k = 0; k < 5; k++, n = Math.floor(n / alphabet.length)) suffix += alphabet[n % alphabet.length];
  return `mirra-${suffix}`;
}

/** N agents over three zones. */
export function createSimulation(hasher: Hasher, wire: WireOverhead, n: number): Simulation {
  const sim: Simulation = {
    byName: new Map(),
    traffic: { pushes: 0, pushBytes: 0, lookups: 0, lookupBytes: 0 },
    hasher,
    wire,
    measuring: false,
    table: undefined,
  };
  for (let i = 0; i < n; i++) {
    const name = podName(i);
    sim.byName.set(name, createAgent(sim, name, `zone-${i % 3}`));
  }
  if (sim.byName.size !== n) throw new Error('pod names collide');
  return sim;
}

export function closeSimulation(sim: Simulation): void {
  for (const agent of sim.byName.values()) agent.holder.close();
}
