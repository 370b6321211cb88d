// Keeping the best few of a long list in one pass: the rendezvous ranking keeps
// a key's first owners among thousands of agents, an owner the best 16 of a
// popular key's thousands of holders. An insertion into a short sorted list
// (count is 1 to 16): no array of thousands is built or sorted.

/** Offers `entry` to `best` (sorted, best first, at most `count` long), by `before` (a ranks before b). */
export function offerBest<T>(best: T[], entry: T, count: number, before: (a: T, b: T) => boolean): void {
  if (count <= 0 || (best.length === count && !before(entry, best[count - 1]!))) return;
  let at = Math.min(best.length, count - 1);
  if (best.length < count) best.push(entry);
  while (at > 0 && before(entry, best[at - 1]!)) {
    best[at] = best[at - 1]!;
    at--;
  }
  best[at] = entry;
}
