/**
 * "Did you mean …" for a misspelt name: the closest candidate within a small edit distance (Damerau–Levenshtein,
 * case-insensitive), so a typo in a decorator or an option names the intended value instead of only failing.
 */

/** Edits allowed for a name of this length: 1 up to 4 characters, 2 up to 8, then 3. */
function tolerance(length: number): number {
  return length <= 4 ? 1 : length <= 8 ? 2 : 3;
}

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of two neighbours. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** The candidate closest to `input` when one is close enough to be a typo of it; ties go to the first declared. */
export function closestName(input: string, candidates: Iterable<string>): string | undefined {
  // Inputs longer than any sensible name are not typos; bounding them also bounds the work.
  if (input.length === 0 || input.length > 256) return undefined;
  const wanted = input.toLowerCase();
  let best: { name: string; distance: number } | undefined;
  for (const candidate of candidates) {
    if (candidate.length > 256) continue;
    const distance = editDistance(wanted, candidate.toLowerCase());
    if (distance <= tolerance(Math.min(input.length, candidate.length)) && (best === undefined || distance < best.distance)) {
      best = { name: candidate, distance };
    }
  }
  return best?.name;
}

/** ` did you mean "orders"?` (with a leading space), or an empty string when no candidate is close. */
export function didYouMean(input: string, candidates: Iterable<string>): string {
  const name = closestName(input, candidates);
  return name === undefined ? '' : ` did you mean ${JSON.stringify(name)}?`;
}
