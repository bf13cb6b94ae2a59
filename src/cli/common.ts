/** Shared pieces of the `pbft` commands: output, one-line errors, flag parsers. */
import { InvalidArgumentError } from 'commander';

export interface CliIo {
  /** One line (or block) for stdout, without the trailing newline. */
  out(text: string): void;
  /** One line (or block) for stderr, without the trailing newline. */
  err(text: string): void;
}

/**
 * A reader that stopped reading (`pbft status | head -1`) is not an error of the command: the
 * output ends there, quietly, as with any Unix tool (instead of an EPIPE stack trace).
 */
function endQuietlyOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

let pipesGuarded = false;

export const processIo: CliIo = {
  out: (text) => process.stdout.write(text + '\n'),
  err: (text) => process.stderr.write(text + '\n'),
};

/** Called once by the CLI's main (every command, whatever it writes with). */
export function guardClosedPipes(): void {
  if (pipesGuarded) return;
  pipesGuarded = true;
  endQuietlyOnClosedPipe(process.stdout);
  endQuietlyOnClosedPipe(process.stderr);
}

/** A failure the CLI reports as one line `pbft <command>: <message>` and exit status 1. */
export class CliError extends Error {
  override readonly name = 'CliError';
  readonly code = 'CLI_ERROR';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(oneLine(message));
  }
}

export function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** The message of any error, as one line (never a stack trace). */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return oneLine(err.message || err.name);
  return oneLine(String(err));
}

/**
 * A commander argument parser for a safe integer from `min` to `max`: any other value, a word or a
 * number out of range alike, gets `message` (so a flag says what it takes, whatever was wrong).
 */
export function intParser(min: number, max: number, message: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(message);
    return n;
  };
}

/** commander argument parser: a non-negative safe integer. */
export const parseNonNegativeInt = intParser(0, Number.MAX_SAFE_INTEGER, 'must be a non-negative integer.');

/** commander argument parser: a positive safe integer. */
export const parsePositiveInt = intParser(1, Number.MAX_SAFE_INTEGER, 'must be a positive integer.');

/** commander argument parser: a TCP port. */
export const parsePort = intParser(1, 65535, 'must be a port number from 1 to 65535.');

/** `host`, `host:port` or `[v6]:port` for --listen. */
export function parseListen(value: string): { host: string; port?: number } {
  const v6 = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(value);
  const plain = /^([A-Za-z0-9.-]+)(?::(\d+))?$/.exec(value);
  const m = v6 ?? plain;
  if (m === null || m[1] === undefined || m[1] === '') throw new InvalidArgumentError('must be HOST or HOST:PORT.');
  if (m[2] === undefined) return { host: m[1] };
  const port = Number(m[2]);
  if (!(port >= 1 && port <= 65535)) throw new InvalidArgumentError('port must be from 1 to 65535.');
  return { host: m[1], port };
}

/** host and port of a ws:// URL from the keyring (brackets removed from IPv6 hosts). */
export function hostPortOf(url: string): { host: string; port: number } {
  const u = new URL(url);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const port = u.port !== '' ? Number(u.port) : u.protocol === 'wss:' ? 443 : 80;
  return { host, port };
}

/** http:// base URL of a replica's status endpoints, from its ws:// URL. */
export function httpBaseOf(url: string): string {
  const u = new URL(url);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  u.pathname = '';
  u.search = '';
  return u.toString().replace(/\/$/, '');
}
