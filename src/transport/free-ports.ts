/**
 * Ports for tests, benchmarks and the nemesis runner: TCP ports on 127.0.0.1 that no other process
 * is handed while this process holds them.
 *
 * Why not bind to port 0 and pass the number on: a replica's port is written into cluster.json
 * before the replica starts, and a replica that is killed restarts on the same port. A port found by
 * binding to 0 and then released comes from the kernel's ephemeral range
 * (/proc/sys/net/ipv4/ip_local_port_range), where the next outgoing connection of any process on the
 * machine may get it as its source port, or the next listen(0) of another test, in the gap before the
 * replica binds it or while the replica is down. So ports are drawn below the ephemeral range,
 * where the kernel never hands a port out by itself, and each is claimed by an exclusive lock file
 * ($TMPDIR/pbft-ports/PORT, holding the claimer's pid) so that test files running at once never draw
 * the same one. A claimed port was also free when claimed (bound and released). The locks are removed
 * when this process exits; a lock whose process is gone is taken over.
 */
import net from 'node:net';
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Lowest port drawn (below it: well-known and registered services more likely to be in use). */
const LOW = 10_000;
/** Used where the ephemeral range cannot be read (Linux's default range starts at 32768). */
const EPHEMERAL_LOW_DEFAULT = 32_768;
const LOCK_DIR = join(tmpdir(), 'pbft-ports');

const held = new Set<string>();
let exitHookInstalled = false;

function ephemeralLow(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && Number.isInteger(low) && low > LOW + 1_000) return low;
  } catch {
    // not Linux, or no /proc
  }
  return EPHEMERAL_LOW_DEFAULT;
}

/** True while a process with this pid exists (signal 0 checks without sending anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock of `port`, or returns false when a live process holds it. */
function lock(port: number): boolean {
  const path = join(LOCK_DIR, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx' });
      held.add(path);
      if (!exitHookInstalled) {
        exitHookInstalled = true;
        process.once('exit', releaseAllPorts);
      }
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner = NaN;
      try {
        owner = Number(readFileSync(path, 'utf8'));
      } catch {
        continue; // removed meanwhile: try again
      }
      if (owner === process.pid || (Number.isInteger(owner) && alive(owner))) return false;
      try {
        unlinkSync(path); // a stale lock: its process is gone
      } catch {
        // someone else took it over first
      }
    }
  }
  return false;
}

function unlock(port: number): void {
  const path = join(LOCK_DIR, String(port));
  held.delete(path);
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}

/** Removes every lock this process holds (also done at exit). */
export function releaseAllPorts(): void {
  for (const path of held) {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  }
  held.clear();
}

function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** Claims the run port..port+count-1 whole, or nothing. */
async function claimRun(port: number, count: number, host: string): Promise<boolean> {
  const taken: number[] = [];
  let ok = true;
  for (let p = port; p < port + count && ok; p++) {
    ok = lock(p);
    if (ok) taken.push(p);
    ok = ok && (await bindable(p, host));
  }
  if (!ok) for (const p of taken) unlock(p);
  return ok;
}

/**
 * A base port p such that p..p+count-1 are claimed for this process (free when claimed, below the
 * ephemeral range, and locked against the other test processes): for `pbft keygen --base-port`.
 */
export async function freeConsecutivePorts(count: number, host = '127.0.0.1'): Promise<number> {
  mkdirSync(LOCK_DIR, { recursive: true });
  const high = ephemeralLow() - count;
  const span = high - LOW;
  if (span <= 0) throw new Error(`no room below the ephemeral port range for ${count} ports`);
  // Start at a point that depends on the pid, so processes starting together spread out.
  const start = (process.pid * 7919 + Math.floor(Math.random() * span)) % span;
  for (let i = 0; i < span; i += count) {
    const port = LOW + ((start + i) % span);
    if (await claimRun(port, count, host)) return port;
  }
  throw new Error(`no run of ${count} free ports between ${LOW} and ${high + count - 1}`);
}

/** `count` distinct ports claimed for this process (see the file comment). */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < count; i++) ports.push(await freeConsecutivePorts(1, host));
  return ports;
}
