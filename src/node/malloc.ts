/**
 * Which malloc a replica process runs on, and the environment that gives a child process jemalloc.
 *
 * Why: Node allocates the backing store of every socket read (64 KiB, shrunk to what was read),
 * every Buffer above its pool's size and every native call's output with the C library's malloc.
 * On glibc a replica's main thread spends 7-9% of its CPU in the C library, most of it malloc and
 * free (perf over a loaded cluster; `malloc_consolidate` runs on the 64 KiB allocations of the
 * socket reads), the clients' 9-11%. With jemalloc preloaded in every process of the bench's
 * 64-client cluster, nine runs alternating with glibc gave 1,978-2,301 req/s (mean 2,138) against
 * 1,866-2,263 (mean 2,001), 7% more: docs/performance.md, "On 2026-12-05". A process cannot switch its allocator
 * once it runs, so the parent that
 * starts a replica (`pbft start`, the bench) preloads it with LD_PRELOAD; the container image sets
 * LD_PRELOAD itself.
 *
 * `auto` (the default) preloads jemalloc where the library is installed (Debian and Ubuntu:
 * `apt-get install libjemalloc2`) and leaves the system's malloc otherwise; `jemalloc` requires it;
 * `system` keeps (or takes out) whatever LD_PRELOAD names jemalloc.
 */
import { existsSync, readFileSync } from 'node:fs';

export type MallocChoice = 'auto' | 'jemalloc' | 'system';
export const MALLOC_CHOICES: readonly MallocChoice[] = ['auto', 'jemalloc', 'system'];

/** Where distributions install jemalloc's shared library (Debian/Ubuntu multiarch, Fedora/RHEL, Alpine). */
export const JEMALLOC_PATHS: readonly string[] = [
  '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2',
  '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2',
  '/usr/lib64/libjemalloc.so.2',
  '/usr/lib/libjemalloc.so.2',
  '/usr/local/lib/libjemalloc.so.2',
];

/** The first jemalloc library found at the usual paths, or undefined. */
export function findJemalloc(exists: (path: string) => boolean = existsSync, paths: readonly string[] = JEMALLOC_PATHS): string | undefined {
  return paths.find((p) => exists(p));
}

const isJemalloc = (entry: string): boolean => /(^|\/)libjemalloc\.so/.test(entry);

export interface MallocEnv {
  /** The environment to start the child with (a copy; the input is not changed). */
  env: NodeJS.ProcessEnv;
  /** What the child will run on: jemalloc (preloaded) or the system's malloc. */
  allocator: 'jemalloc' | 'system';
  /** The jemalloc library preloaded, when allocator is jemalloc. */
  path?: string;
}

/** What a process started on the system's malloc where jemalloc could run says (pbft start, the bench). */
export const JEMALLOC_MISSING_HINT = 'jemalloc is not installed; with it (Debian/Ubuntu: apt-get install libjemalloc2) replicas do about 7% more requests per second';

/**
 * The environment for a child process under `choice`. An LD_PRELOAD that already names jemalloc is
 * kept under auto and jemalloc (the operator chose it) and taken out under system; other preloaded
 * libraries are kept in their order, jemalloc goes last. Throws when `jemalloc` is required and no
 * library is found.
 */
export function mallocEnv(env: NodeJS.ProcessEnv, choice: MallocChoice, found: () => string | undefined = () => findJemalloc()): MallocEnv {
  const preload = (env.LD_PRELOAD ?? '').split(/[:\s]+/).filter((p) => p !== '');
  const others = preload.filter((p) => !isJemalloc(p));
  const already = preload.find(isJemalloc);
  const out: NodeJS.ProcessEnv = { ...env };
  const set = (list: string[]): void => {
    if (list.length === 0) delete out.LD_PRELOAD;
    else out.LD_PRELOAD = list.join(':');
  };
  if (choice === 'system') {
    set(others);
    return { env: out, allocator: 'system' };
  }
  const path = already ?? found();
  if (path === undefined) {
    if (choice === 'jemalloc') {
      throw new Error(`jemalloc was asked for but is not installed (looked in ${JEMALLOC_PATHS.join(', ')}); install it (Debian/Ubuntu: apt-get install libjemalloc2) or choose --malloc auto or system`);
    }
    return { env: out, allocator: 'system' };
  }
  set([...others, path]);
  return { env: out, allocator: 'jemalloc', path };
}

/** What a process's memory map says about its allocator (mallocInUse). */
export type MallocInUse = 'jemalloc' | 'system' | 'unknown';

/**
 * The malloc a running process uses, from its memory map (Linux): 'jemalloc' when the library is
 * mapped, 'system' when the map can be read and does not hold it, 'unknown' where it cannot be read
 * (another OS, a process that is gone).
 */
export function mallocInUse(pid: number | 'self' = 'self', read: (path: string) => string = (p) => readFileSync(p, 'utf8')): MallocInUse {
  let maps: string;
  try {
    maps = read(`/proc/${pid}/maps`);
  } catch {
    return 'unknown';
  }
  return maps.split('\n').some((line) => isJemalloc(line.trim().split(/\s+/)[5] ?? '')) ? 'jemalloc' : 'system';
}

let ownMalloc: MallocInUse | undefined;
/** This process's malloc: it cannot change while the process runs, so the map is read once. */
export function processMalloc(): MallocInUse {
  ownMalloc ??= mallocInUse();
  return ownMalloc;
}
