/**
 * `npm run bench -- --repeat N`: the selected parts measured N times in a row, each repetition with
 * its own crypto floor and its own runs, each target judged within its repetition; then one verdict
 * per target over the repetitions. On a shared machine one run's figures move by 5-20% (the crypto
 * floor alone by a third within an hour), so a target near its line can be [MET] in one run and
 * [MISSED] in the next on the same code; the verdict over N runs says which side it is on.
 */

/** A target as one repetition judged it (bench.ts's Target). */
export interface JudgedTarget {
  name: string;
  met: boolean | undefined;
  detail: string;
}

/** A target over the repetitions. */
export interface RepeatedTarget {
  name: string;
  /** Met in more than half of the repetitions that judged it; undefined when none judged it. */
  met: boolean | undefined;
  /** Repetitions that judged it (met or missed). */
  judged: number;
  /** Of those, the ones in which it was met. */
  metIn: number;
  /** Each repetition's detail, in order (undefined: that repetition had no such target). */
  details: Array<string | undefined>;
}

/**
 * One verdict per target name, in the order the names first appear: [MET] when met in more than
 * half of the repetitions that judged it (with an odd count, the verdict of the median figure), so a
 * tie is not met. A target judged in no repetition stays not judged.
 */
export function targetsOverRepetitions(repetitions: readonly (readonly JudgedTarget[])[]): RepeatedTarget[] {
  const names: string[] = [];
  for (const targets of repetitions) for (const t of targets) if (!names.includes(t.name)) names.push(t.name);
  return names.map((name) => {
    const found = repetitions.map((targets) => targets.find((t) => t.name === name));
    const judged = found.filter((t) => t !== undefined && t.met !== undefined).length;
    const metIn = found.filter((t) => t?.met === true).length;
    return { name, met: judged === 0 ? undefined : 2 * metIn > judged, judged, metIn, details: found.map((t) => t?.detail) };
  });
}

/** The median of each ratio over the repetitions that have it (the mean of the middle two for an even count). */
export function medianRatios(repetitions: readonly Readonly<Record<string, number>>[]): Record<string, number> {
  const out: Record<string, number> = {};
  const keys = [...new Set(repetitions.flatMap((r) => Object.keys(r)))];
  for (const key of keys) {
    const values = repetitions
      .map((r) => r[key])
      .filter((v): v is number => v !== undefined && Number.isFinite(v))
      .sort((a, b) => a - b);
    if (values.length === 0) continue;
    const mid = Math.floor(values.length / 2);
    out[key] = values.length % 2 === 1 ? values[mid]! : (values[mid - 1]! + values[mid]!) / 2;
  }
  return out;
}

/** The lines the bench prints for the verdicts over `count` repetitions. */
export function repeatedTargetLines(targets: readonly RepeatedTarget[], count: number): string[] {
  const out = [`targets over ${count} repetitions (each judged within its own repetition; [MET] when met in more than half of those that judged it)`];
  for (const t of targets) {
    const verdict = t.met === undefined ? 'not judged' : t.met ? 'MET' : 'MISSED';
    out.push(`  [${verdict}] ${t.name}: met in ${t.metIn} of ${t.judged}`);
    t.details.forEach((d, i) => out.push(`      ${i + 1}: ${d ?? '(not in this repetition)'}`));
  }
  return out;
}
