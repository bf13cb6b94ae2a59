/**
 * `pbft dashboard [--keys keys] [--host 127.0.0.1] [--port 7100] [--interval 1000] [--history 300]`:
 * a live web page of the cluster (src/dashboard/). It polls every replica of the keyring, and the
 * replicas that joined later, as `pbft status` does, and serves the page, its event stream and the
 * latest snapshot on host:port until SIGINT, SIGTERM or SIGHUP (then it exits 0). Once it listens
 * and the first round is in, it prints one line on stdout with the page's URL (with --port 0, the
 * port the system chose). A missing keyring, a bad flag or an address it cannot listen on is one
 * line on stderr and exit status 1.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { DashboardError, DashboardServer, INTERVAL_MS_DEFAULT } from '../dashboard/server.ts';
import { HISTORY_MS_DEFAULT } from '../dashboard/model.ts';
import { CliError, intParser, type CliIo } from './common.ts';
import { loadKeyringCluster } from './status.ts';

export interface DashboardFlags {
  keys: string;
  host: string;
  port: number;
  interval: number;
  history: number;
}

export const DASHBOARD_PORT_DEFAULT = 7100;
const INTERVAL_MS_MIN = 100;
const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

const parsePortOrZero = intParser(0, 65535, 'must be a port number from 0 (any free port) to 65535.');

function parseHost(value: string): string {
  const v6 = /^\[([0-9a-fA-F:.]+)\]$/.exec(value);
  if (v6 !== null) return v6[1]!;
  if (!/^[A-Za-z0-9.:-]+$/.test(value)) throw new InvalidArgumentError('must be a host name or an IP address.');
  return value;
}

const parseInterval = intParser(INTERVAL_MS_MIN, Number.MAX_SAFE_INTEGER, `must be an integer of at least ${INTERVAL_MS_MIN} (milliseconds).`);

const parseHistory = intParser(10, 3_600, 'must be an integer from 10 to 3600 (seconds).');

export function addDashboardCommand(program: Command, action: (flags: DashboardFlags) => Promise<number>, done: (code: number) => void): Command {
  return program
    .command('dashboard')
    .description(
      'serve a live web page of the cluster: per replica its view, role, status, last executed and stable checkpoint, throughput and latency, ' +
        'and view changes, rejected inputs, evidence of faults and membership; prints the URL, runs until Ctrl-C, SIGTERM or SIGHUP',
    )
    .option('--keys <dir>', 'keyring directory (cluster.json)', 'keys')
    .option('--host <host>', 'address to listen on (0.0.0.0: every interface; the data is the replicas\' public /status)', parseHost, '127.0.0.1')
    .option('--port <port>', 'port to listen on (0: any free port; the URL is printed)', parsePortOrZero, DASHBOARD_PORT_DEFAULT)
    .option('--interval <ms>', 'how often to ask every replica for /status and /metrics', parseInterval, INTERVAL_MS_DEFAULT)
    .option('--history <seconds>', 'how far back the throughput and latency plots reach', parseHistory, HISTORY_MS_DEFAULT / 1000)
    .action(async (flags: DashboardFlags) => {
      done(await action(flags));
    });
}

export async function runDashboardCommand(flags: DashboardFlags, io: CliIo): Promise<number> {
  const cluster = loadKeyringCluster(flags.keys);
  const server = new DashboardServer(
    { cluster, host: flags.host, port: flags.port, intervalMs: flags.interval, historyMs: flags.history * 1000 },
    { onError: (err) => io.err(`pbft dashboard: a round failed: ${err instanceof Error ? err.message : String(err)}`) },
  );
  let stopping: ((signal: NodeJS.Signals) => void) | undefined;
  const stopped = new Promise<NodeJS.Signals>((resolve) => {
    stopping = resolve;
  });
  const onSignal = (signal: NodeJS.Signals): void => stopping!(signal);
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  try {
    try {
      await server.start();
    } catch (err) {
      if (err instanceof DashboardError) throw new CliError(err.message);
      throw err;
    }
    const s = server.snapshot();
    const up = s !== undefined ? `${s.cluster.up} of ${s.cluster.n} replicas reachable` : 'no round yet';
    io.out(`pbft dashboard: ${server.url} (cluster ${cluster.clusterId}, ${up}; Ctrl-C stops it)`);
    const signal = await stopped;
    io.err(`pbft dashboard: ${signal} received; stopping`);
    await server.stop();
    return 0;
  } finally {
    for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
    await server.stop().catch(() => undefined);
  }
}
