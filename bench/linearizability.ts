/**
 * Speed of the linearizability checker (src/check/linearizability.ts) on generated histories that
 * are linearizable by construction (src/check/generate.ts: a real register, random concurrency,
 * unknown outcomes that take effect late or never), and on the same histories with one read made
 * stale (a violation to find and shrink to a window).
 *
 * Run: node --import tsx bench/linearizability.ts [seeds per row, default 3]
 * Prints one line per history: operations, keys, clients, unknown-outcome writes, configurations
 * the searches entered, and wall time. No assertions: a benchmark, not a test.
 */
import { performance } from 'node:perf_hooks';
import { checkLinearizable, type CheckStats } from '../src/check/linearizability.ts';
import { generateHistory, mutateStaleRead, type GenerateOptions } from '../src/check/generate.ts';

const seeds = Number(process.argv[2] ?? 3);

interface Row {
  name: string;
  shape: Omit<GenerateOptions, 'seed'>;
}

const rows: Row[] = [
  { name: 'target', shape: { ops: 10_000, keys: 5, clients: 16, unknownRate: 0.05 } },
  { name: 'long', shape: { ops: 50_000, keys: 5, clients: 16, unknownRate: 0.05 } },
  { name: 'one key', shape: { ops: 2_000, keys: 1, clients: 16, unknownRate: 0.05 } },
  { name: 'one key', shape: { ops: 10_000, keys: 1, clients: 16, unknownRate: 0.05 } },
];

const pad = (s: string | number, n: number): string => String(s).padStart(n);
console.log(`${'history'.padEnd(22)} ${pad('ops', 6)} ${pad('keys', 4)} ${pad('clients', 7)} ${pad('unknown writes', 14)} ${pad('configs', 9)} ${pad('ms', 8)}  result`);

function run(label: string, seed: number, history: ReturnType<typeof generateHistory>, shape: Row['shape']): void {
  const unknownWrites = history.filter((o) => o.outcome === 'unknown' && o.op.type !== 'get').length;
  const stats: CheckStats = { configurations: 0 };
  const t0 = performance.now();
  const result = checkLinearizable(history, { stats });
  const ms = performance.now() - t0;
  const verdict = result.ok ? 'linearizable' : `violation on ${result.key}, window of ${result.window.length}`;
  console.log(
    `${`${label} #${seed}`.padEnd(22)} ${pad(history.length, 6)} ${pad(shape.keys ?? 5, 4)} ${pad(shape.clients ?? 16, 7)} ${pad(unknownWrites, 14)} ${pad(stats.configurations, 9)} ${pad(ms.toFixed(0), 8)}  ${verdict}`,
  );
}

for (const row of rows) {
  for (let seed = 1; seed <= seeds; seed++) {
    const history = generateHistory({ seed, ...row.shape });
    run(row.name, seed, history, row.shape);
  }
}
for (const row of rows.filter((r) => r.shape.ops === 10_000)) {
  for (let seed = 1; seed <= seeds; seed++) {
    const mutated = mutateStaleRead(generateHistory({ seed, ...row.shape }), seed);
    if (mutated !== undefined) run(`${row.name}, stale read`, seed, mutated.history, row.shape);
  }
}
