// The soak's seeded randomness: every choice of the workload and the fault
// injector (which node, which image, which fault, how long, when) comes from
// a PRNG seeded by MIRRA_SOAK_SEED, so a run is replayed from its seed (the
// timing of the processes still varies). Each part draws from its own stream
// (the seed and the stream's name hashed together), so that one part drawing
// more or less (a pull that needed a retry) does not shift the other's choices.
import { createHash, randomInt } from 'node:crypto';

export interface Random {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [min, max]. */
  int(min: number, max: number): number;
  /** True with probability p. */
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
  /** `count` distinct items (all of them when there are fewer). */
  sample<T>(items: readonly T[], count: number): T[];
}

/** A fresh seed for a run that was not given one: 9 decimal digits, easy to copy. */
export function newSeed(): string {
  return String(randomInt(100_000_000, 1_000_000_000));
}

/** sfc32 over four words of sha256(seed, stream). */
export function createRandom(seed: string, stream: string): Random {
  const digest = createHash('sha256').update(`${seed}\0${stream}`).digest();
  let a = digest.readUInt32LE(0);
  let b = digest.readUInt32LE(4);
  let c = digest.readUInt32LE(8);
  let d = digest.readUInt32LE(12);
  const next = (): number => {
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  const int = (min: number, max: number): number => min + Math.floor(next() * (max - min + 1));
  const random: Random = {
    next,
    int,
    chance: (p) => next() < p,
    pick(items) {
      if (items.length === 0) throw new Error('pick from nothing');
      return items[int(0, items.length - 1)] as (typeof items)[number];
    },
    sample(items, count) {
      const pool = [...items];
      const out: Array<(typeof items)[number]> = [];
      while (out.length < count && pool.length > 0) out.push(pool.splice(int(0, pool.length - 1), 1)[0] as (typeof items)[number]);
      return out;
    },
  };
  for (let i = 0; i < 12; i++) next(); // mix the state
  return random;
}
