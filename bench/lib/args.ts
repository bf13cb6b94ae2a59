/** Integer options of the small bench scripts (bench/sdk-cpu.ts, bench/kv-checkpoint.ts). */

/**
 * The integer after `name` in `args` (`fallback` when absent), at least `min`; anything else is a
 * one-line error naming `program` and exit code 2.
 */
export function intArg(program: string, args: readonly string[], name: string, fallback: number, min = 1): number {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const n = Number(args[i + 1]);
  if (!Number.isSafeInteger(n) || n < min) {
    process.stderr.write(`${program}: ${name} takes an integer >= ${min}, got ${args[i + 1] ?? 'nothing'}\n`);
    process.exit(2);
  }
  return n;
}
