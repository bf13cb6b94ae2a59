/** `pbft sim`: replay one simulator seed or run a swarm (implemented with the swarm in src/sim/swarm.ts). */
import type { Command } from 'commander';

export function addSimCommand(program: Command): Command {
  return program
    .command('sim')
    .description('run the deterministic simulator: one seed (--seed N) or a swarm (--seeds COUNT)')
    .option('--seed <n>', 'replay one seed')
    .option('--seeds <count>', 'run a swarm of seeds')
    .option('--replicas <n>', 'replicas (3f+1)', '4')
    .action(() => {
      process.stderr.write('sim: not implemented yet\n');
      process.exitCode = 1;
    });
}
