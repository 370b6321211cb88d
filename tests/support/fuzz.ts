// Settings of the property-based (fuzz) tests (`*.fuzz.test.ts`, fast-check).
// `npm test` runs them with a fixed seed, each property with its own small
// number of runs and at most 2 s; `npm run fuzz` runs every property for
// MIRRA_FUZZ_SECONDS (default 20 s) with a random seed, printed on each test
// so that a failure can be replayed:
//
//   MIRRA_FUZZ_SEED=<n>|random  seed (default: DEFAULT_FUZZ_SEED)
//   MIRRA_FUZZ_RUNS=<n>         runs per property (default: the property's own
//                               count; unlimited when MIRRA_FUZZ_SECONDS is set)
//   MIRRA_FUZZ_SECONDS=<s>      time budget per property (default 2)
//
// A failure names the seed and the counterexample's path:
// `MIRRA_FUZZ_SEED=<seed> MIRRA_FUZZ_SECONDS=<same> node --test <file>` replays it.
import type { TestContext } from 'node:test';
import fc from 'fast-check';

export const DEFAULT_FUZZ_SEED = 0x6d697272;
const DEFAULT_SECONDS = 2;
/** Runs a property must get through within its time budget (or all of them, when it has fewer). */
const MIN_RUNS = 10;

export interface FuzzSettings {
  seed: number;
  /** Undefined: the property's default. */
  runs: number | undefined;
  timeLimitMs: number;
  /** The seed was drawn at random (print it). */
  randomSeed: boolean;
}

function positiveNumber(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(value)}`);
  return parsed;
}

export function fuzzSettings(env: NodeJS.ProcessEnv = process.env): FuzzSettings {
  const seedText = env.MIRRA_FUZZ_SEED;
  const randomSeed = seedText === 'random';
  let seed = DEFAULT_FUZZ_SEED;
  if (randomSeed) seed = Math.floor(Math.random() * 0x7fffffff);
  else if (seedText !== undefined && seedText !== '') {
    seed = Number(seedText);
    if (!Number.isSafeInteger(seed)) throw new Error(`MIRRA_FUZZ_SEED must be an integer or "random", got ${JSON.stringify(seedText)}`);
  }
  const seconds = positiveNumber(env.MIRRA_FUZZ_SECONDS, 'MIRRA_FUZZ_SECONDS');
  const runs = positiveNumber(env.MIRRA_FUZZ_RUNS, 'MIRRA_FUZZ_RUNS');
  return {
    seed,
    runs: runs ?? (seconds === undefined ? undefined : Number.MAX_SAFE_INTEGER),
    timeLimitMs: (seconds ?? DEFAULT_SECONDS) * 1000,
    randomSeed,
  };
}

/** fast-check parameters for one property: `defaultRuns` unless the environment says otherwise. */
export function fuzzParameters<T>(settings: FuzzSettings, defaultRuns: number): fc.Parameters<T> {
  return {
    seed: settings.seed,
    numRuns: settings.runs ?? defaultRuns,
    endOnFailure: false,
    // The plugin is generic over nothing (Plugin<unknown>); it never touches the generated values.
    plugins: [fc.interruptAfterTimeLimit(settings.timeLimitMs) as fc.Plugin<T>],
  };
}

/** Runs an (async) property with the fuzz settings; reports the seed on the test when it is random. */
export async function checkProperty<T>(t: TestContext, property: fc.IAsyncProperty<T> | fc.IProperty<T>, defaultRuns: number): Promise<void> {
  const settings = fuzzSettings();
  if (settings.randomSeed) t.diagnostic(`fuzz seed ${settings.seed} (replay: MIRRA_FUZZ_SEED=${settings.seed})`);
  const started = performance.now();
  const details = await fc.check(property, fuzzParameters<T>(settings, defaultRuns));
  t.diagnostic(`${details.numRuns} runs in ${Math.round(performance.now() - started)} ms${details.interrupted ? ' (time budget reached)' : ''}`);
  if (details.failed) throw new Error(failureReport(details, settings.seed));
  // A budget eaten by a starved machine must not pass as a fuzz run that tried (almost) nothing.
  const minimum = Math.min(MIN_RUNS, settings.runs ?? defaultRuns);
  if (details.numRuns < minimum) throw new Error(`only ${details.numRuns} runs within the time budget (at least ${minimum} wanted): raise MIRRA_FUZZ_SECONDS`);
}

function clipText(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : `${text.slice(0, maxChars)}...(${text.length} chars)`;
}

/** fast-check's report, with the counterexample clipped (some are 64 KiB paths) and the error message kept. */
function failureReport<T>(details: fc.RunDetails<T>, seed: number): string {
  const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  return [
    `Property failed after ${details.numRuns} runs (seed ${seed}, path "${details.counterexamplePath ?? ''}"; replay: MIRRA_FUZZ_SEED=${seed})`,
    `Counterexample: ${clipText(fc.stringify(details.counterexample), 2000)}`,
    `Shrunk ${details.numShrinks} time(s)`,
    `Error: ${clipText(error, 4000)}`,
  ].join('\n');
}
