// What an agent shows of its part in the index on its own pod, for people
// (`kubectl get pods -o jsonpath`, `mirra shards`): a small status header and
// the shards it owns. Written rarely (--status-interval, only on change): a
// pod update is sent to every watcher of the pod (the kubelet and the
// controllers), so this stays a few hundred bytes a few times an hour, and
// nothing reads it to route (docs/DESIGN.md, "Discovery").
//
//   mirra.dev/index         v=2;keys=2013;owned=51;postings=4120;members=10
//   mirra.dev/owned-shards  3,17,42,...
//   mirra.dev/updated       2026-12-06T08:00:00.000Z
//
// The summary annotations of the first version (mirra.dev/summary and
// mirra.dev/shard-<i>) are removed by the publisher when it finds them.

export const STATUS_ANNOTATION = 'mirra.dev/index';
export const OWNED_ANNOTATION = 'mirra.dev/owned-shards';
/** When the agent last changed its status (RFC 3339). */
export const UPDATED_ANNOTATION = 'mirra.dev/updated';
/** The first version's summary annotations: removed when seen. */
const LEGACY_HEADER = 'mirra.dev/summary';
const LEGACY_SHARD_PREFIX = 'mirra.dev/shard-';
export const STATUS_VERSION = 2;

export interface IndexStatus {
  /** Keys this agent holds. */
  readonly keys: number;
  /** Shards it owns, ascending. */
  readonly owned: readonly number[];
  /** (key, holder) pairs it keeps as an owner. */
  readonly postings: number;
  /** Ready agents in its ownership table. */
  readonly members: number;
}

/** Whether an annotation belongs to mirra's status (or is a leftover of the first version's summary). */
export function isStatusAnnotation(name: string): boolean {
  return (
    name === STATUS_ANNOTATION || name === OWNED_ANNOTATION || name === UPDATED_ANNOTATION || name === LEGACY_HEADER || name.startsWith(LEGACY_SHARD_PREFIX)
  );
}

/** The status annotations, without the update time (compare these; add UPDATED_ANNOTATION when they changed). */
export function statusAnnotations(status: IndexStatus): Record<string, string> {
  return {
    [STATUS_ANNOTATION]: `v=${STATUS_VERSION};keys=${status.keys};owned=${status.owned.length};postings=${status.postings};members=${status.members}`,
    [OWNED_ANNOTATION]: status.owned.join(','),
  };
}

/** parseStatus's reason for a pod without any status annotation: a new agent (not a fault). */
export const NO_STATUS_YET = 'no status yet';
/** parseStatus's reason for a pod with the first version's summary only. */
export const FIRST_VERSION_STATUS = 'first-version summary (agent not upgraded)';

const STATUS_V2 = /^v=2;keys=(\d{1,10});owned=(\d{1,4});postings=(\d{1,12});members=(\d{1,6})$/;
const OWNED = /^(\d{1,4}(,\d{1,4}){0,4095})?$/;

/** The status of a pod's annotations, or a one-line reason it has none that can be read. */
export function parseStatus(annotations: Readonly<Record<string, string | undefined>>): IndexStatus | string {
  const header = annotations[STATUS_ANNOTATION];
  if (header === undefined) return annotations[LEGACY_HEADER] === undefined ? NO_STATUS_YET : FIRST_VERSION_STATUS;
  const match = STATUS_V2.exec(header);
  if (match === null) return `unreadable status ${JSON.stringify(header.slice(0, 80))} (not the v=${STATUS_VERSION} format)`;
  const owned = annotations[OWNED_ANNOTATION] ?? '';
  if (!OWNED.test(owned)) return `unreadable ${OWNED_ANNOTATION} ${JSON.stringify(owned.slice(0, 40))} (not a comma-separated list of shard numbers)`;
  const [keys, , postings, members] = match.slice(1).map(Number) as [number, number, number, number];
  return { keys, owned: owned === '' ? [] : owned.split(',').map(Number), postings, members };
}
