// Which containerd the tests, the demo and the benchmarks run: 2.1 by default
// (the runtime the clusters mirra is for run), or an older series for the
// compatibility runs, chosen with MIRRA_CONTAINERD (2.1, 1.7 or 1.6). 2.1 and
// 1.7 are Debian's sid and trixie builds unpacked by hack/containerd.sh under
// MIRRA_CONTAINERD_CACHE (default /var/cache/mirra/containerd); 1.6 is
// bookworm's package in /usr/bin. Read when a test starts a containerd, never
// at import time.
import { join } from 'node:path';

export type ContainerdSeries = '2.1' | '1.7' | '1.6';

export interface ContainerdRelease {
  readonly series: ContainerdSeries;
  /** The containerd binary. */
  readonly containerd: string;
  /** Its ctr. */
  readonly ctr: string;
  /** The config file version it is run with: 3 for 2.x, 2 for 1.x. */
  readonly configVersion: 2 | 3;
}

const SERIES: readonly ContainerdSeries[] = ['2.1', '1.7', '1.6'];

function isSeries(value: string): value is ContainerdSeries {
  return (SERIES as readonly string[]).includes(value);
}

/** The release MIRRA_CONTAINERD names (default 2.1); throws one line naming the variable for anything else. */
export function containerdRelease(env: NodeJS.ProcessEnv = process.env): ContainerdRelease {
  const raw = env.MIRRA_CONTAINERD ?? '';
  const series = raw === '' ? '2.1' : raw;
  if (!isSeries(series)) throw new Error(`MIRRA_CONTAINERD=${JSON.stringify(raw)}: use one of ${SERIES.join(', ')} (default 2.1)`);
  if (series === '1.6') return { series, containerd: '/usr/bin/containerd', ctr: '/usr/bin/ctr', configVersion: 2 };
  const bin = join(env.MIRRA_CONTAINERD_CACHE ?? '/var/cache/mirra/containerd', series, 'usr', 'bin');
  return { series, containerd: join(bin, 'containerd'), ctr: join(bin, 'ctr'), configVersion: series === '2.1' ? 3 : 2 };
}
