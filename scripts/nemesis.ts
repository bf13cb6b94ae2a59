// `npm run nemesis -- --help`: the running service under faults, checked for linearizability.
import { main } from '../src/nemesis/main.ts';

process.exitCode = await main(process.argv);
// Lingering sockets or timers of the run must not keep the process alive.
setTimeout(() => process.exit(process.exitCode ?? 0), 1_000).unref();
