/**
 * What waking up costs on this machine: the CPU a Node process spends per timer wake-up that does no
 * work, after sleeping 1 ms and after sleeping 20 ms. A replica serving one client sleeps between the
 * frames of each request and wakes several times per request (and so do the other replicas and the
 * client), so this price is part of every such request, on top of the work; with 64 clients a
 * process rarely sleeps and pays it seldom.
 *
 * On a machine where a sleeping vCPU halts and waking it takes the hypervisor (a cloud VM), or where
 * the caches and TLB are cold after the sleep, the price is far above the few microseconds of an idle
 * core on bare metal; on the 2-core Firecracker VMs this project was measured on it was 50-60 us after
 * 1 ms and about 200 us after 20 ms (docs/performance.md, session 58).
 *
 * Measured in a child process of its own (the bench's process holds a lot of state): `rounds` sleeps
 * of each length, one after the other, and the child's user + system CPU over them / rounds.
 *
 * Run alone: node --import tsx bench/wakeup-cost.ts [rounds, default 200]
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface WakeupCost {
  /** CPU microseconds per wake-up after a 1 ms sleep (a timer of 1 ms). */
  after1msUs: number;
  /** The same after a 20 ms sleep. */
  after20msUs: number;
  rounds: number;
}

const CHILD_ARG = '--wakeup-cost-child';

async function sleeper(ms: number, rounds: number): Promise<number> {
  const start = process.cpuUsage();
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setTimeout(resolve, ms));
  const used = process.cpuUsage(start);
  return (used.user + used.system) / rounds;
}

async function runChild(rounds: number): Promise<void> {
  await sleeper(1, 20); // the code path compiled, the timers warm
  const after1msUs = await sleeper(1, rounds);
  const after20msUs = await sleeper(20, rounds);
  process.send!({ after1msUs, after20msUs });
}

export function measureWakeupCost(options: { rounds?: number } = {}): Promise<WakeupCost> {
  const rounds = options.rounds ?? 200;
  if (!Number.isInteger(rounds) || rounds < 1) return Promise.reject(new RangeError('wakeup-cost: rounds must be a positive integer'));
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), [CHILD_ARG, String(rounds)], { execArgv: process.execArgv, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    let result: WakeupCost | undefined;
    child.once('message', (m: { after1msUs: number; after20msUs: number }) => {
      result = { after1msUs: m.after1msUs, after20msUs: m.after20msUs, rounds };
      child.disconnect();
    });
    child.once('error', reject);
    child.once('exit', (code) => (result !== undefined ? resolve(result) : reject(new Error(`wakeup-cost: the child exited (${code}) without a result`))));
  });
}

if (process.argv[2] === CHILD_ARG) {
  void runChild(Number(process.argv[3]));
} else if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = process.argv[2];
  const rounds = arg === undefined ? 200 : Number(arg);
  measureWakeupCost({ rounds }).then(
    (c) => console.log(`a Node process's CPU per timer wake-up (${c.rounds} rounds each): ${c.after1msUs.toFixed(1)} us after 1 ms asleep, ${c.after20msUs.toFixed(1)} us after 20 ms`),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : String(err));
      process.exitCode = 1;
    },
  );
}
