// The agent's own Prometheus metrics: a registry of metric families
// (family.ts: Counter, Gauge; histogram.ts: Histogram) written in the text
// exposition format 0.0.4 (text-format.ts), and the process and Node.js
// metrics (process-metrics.ts), instead of prom-client.
//
// Why (Node 24.21, esbuild bundles, MALLOC_TRIM_THRESHOLD_=0, this 2-core
// machine, 2026-12-06): in a bare node:http server prom-client with one
// Counter took idle RSS from 48.9 to 56.5 MiB, but 6.5 MiB of that is Node's
// own https, tls, crypto, zlib, perf_hooks and v8 modules it loads (the bare
// server loading only those: 55.4 MiB), which the agent loads anyway but
// zlib. In the agent (tests/scratch's idle probe, `mirra registry` against
// an empty containerd, six interleaved runs each): 66.4-66.5 MiB with
// prom-client, 65.8-66.0 MiB with this (V8 heap used 12.0 -> 11.4 MiB,
// bundle 687 -> 629 KB). Less than hoped: the idle target (<= 64 MiB) is
// not met by this alone.
//
// No default registry and no module-level state: createMetrics() makes one
// registry per agent. A scrape runs every family's collect hook first (one
// hook may set its siblings from one reading), then writes every family in
// the order they were registered.

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** What a registry holds: a family that collects at scrape time and writes its lines. */
export interface RegisteredFamily {
  readonly name: string;
  collect(): void | Promise<void>;
  /** Appends the family's HELP, TYPE and sample lines. */
  write(lines: string[]): void;
}

export class Registry {
  readonly contentType = CONTENT_TYPE;
  readonly #families = new Map<string, RegisteredFamily>();

  /** Called by a family's constructor; a name registered twice is an error. */
  register(family: RegisteredFamily): void {
    if (this.#families.has(family.name)) throw new Error(`metric ${family.name} is registered twice`);
    this.#families.set(family.name, family);
  }

  /** The scrape: every collect hook in turn, then every family's lines. */
  async metrics(): Promise<string> {
    for (const family of this.#families.values()) await family.collect();
    const lines: string[] = [];
    for (const family of this.#families.values()) family.write(lines);
    return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
  }
}
