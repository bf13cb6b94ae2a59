/**
 * Running a replica as a process (used by `pbft replica` and the integration test fixtures): signals,
 * uncaught errors and exit codes around one ReplicaNode.
 *
 *   exit 0   stopped after SIGTERM, SIGINT or SIGHUP
 *   exit 1   cannot start (one line on stderr), a fatal loop error (ReplicaNode's default onFatal),
 *            an uncaught exception or unhandled rejection, a failed stop, a stop that took longer
 *            than 10 s, or another signal later than 2 s after the first
 */
import { ReplicaNode, type ReplicaNodeOptions } from './replica-node.ts';
import { errorText, stackLine } from './log.ts';

export interface ReplicaProcessOptions extends ReplicaNodeOptions {
  /** Receives the one-line error when the replica cannot start (default: stderr). */
  errorLine?: (line: string) => void;
}

/**
 * Starts a ReplicaNode and keeps it running until SIGTERM, SIGINT or SIGHUP (a closed terminal), then
 * stops it and exits 0.
 * A start failure prints one line and exits 1; a fatal loop error exits 1 (see ReplicaNode).
 */
export async function runReplicaProcess(options: ReplicaProcessOptions): Promise<ReplicaNode> {
  const errorLine = options.errorLine ?? ((line: string) => process.stderr.write(line + '\n'));
  const log = options.log;
  process.on('uncaughtException', (err) => {
    log.error('uncaught exception; stopping', { err: errorText(err), stack: err.stack === undefined ? undefined : stackLine(err.stack) });
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    log.error('unhandled rejection; stopping', { err: errorText(err) });
    process.exit(1);
  });
  let node: ReplicaNode;
  try {
    node = new ReplicaNode(options);
    await node.start();
  } catch (err) {
    errorLine(`pbft replica: ${errorText(err)}`);
    process.exit(1);
  }
  let stoppingSince: number | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stoppingSince !== undefined) {
      // Ctrl-C reaches the whole process group and `pbft start` also sends SIGTERM: a second signal
      // right after the first is the same request. A later one (the stop hangs) means "now".
      if (Date.now() - stoppingSince < 2_000) return;
      log.warn('signal received again while stopping; exiting now', { signal });
      process.exit(1);
    }
    stoppingSince = Date.now();
    log.info('signal received; stopping', { signal });
    const guard = setTimeout(() => {
      log.error('stop took too long; exiting');
      process.exit(1);
    }, 10_000);
    guard.unref();
    node.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error('stop failed', { err: errorText(err) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // A closed terminal: without a handler the process would die at once, skipping the clean stop.
  process.on('SIGHUP', onSignal);
  return node;
}
