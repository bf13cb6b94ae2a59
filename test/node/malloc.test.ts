/**
 * src/node/malloc.ts: the environment that preloads jemalloc into a child process, and what a
 * process's memory map says about its allocator. The last test starts real child processes with
 * that environment and reads their maps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { findJemalloc, JEMALLOC_PATHS, mallocEnv, mallocInUse } from '../../src/node/malloc.ts';

const LIB = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';
const found = (): string => LIB;
const none = (): undefined => undefined;

test('findJemalloc: the first of the usual paths that exists', () => {
  assert.equal(findJemalloc(() => false), undefined);
  const paths = ['/a/libjemalloc.so.2', '/b/libjemalloc.so.2', '/c/libjemalloc.so.2'];
  assert.equal(findJemalloc((p) => p !== '/a/libjemalloc.so.2', paths), '/b/libjemalloc.so.2');
  assert.ok(JEMALLOC_PATHS.includes('/usr/local/lib/libjemalloc.so.2'), 'the container image links it there');
});

test('mallocEnv auto: preloads jemalloc when found, leaves the environment alone otherwise', () => {
  const env = { PATH: '/bin', OTHER: 'x' };
  const a = mallocEnv(env, 'auto', found);
  assert.deepEqual(a, { env: { PATH: '/bin', OTHER: 'x', LD_PRELOAD: LIB }, allocator: 'jemalloc', path: LIB });
  assert.equal((env as NodeJS.ProcessEnv).LD_PRELOAD, undefined, 'the input is not changed');
  const b = mallocEnv(env, 'auto', none);
  assert.deepEqual(b, { env: { PATH: '/bin', OTHER: 'x' }, allocator: 'system' });
});

test('mallocEnv keeps other preloaded libraries, in order, with jemalloc last; an operator\'s jemalloc is kept', () => {
  const r = mallocEnv({ LD_PRELOAD: '/x/liba.so /y/libb.so' }, 'jemalloc', found);
  assert.equal(r.env.LD_PRELOAD, `/x/liba.so:/y/libb.so:${LIB}`);
  const own = '/opt/je/lib/libjemalloc.so.2';
  const k = mallocEnv({ LD_PRELOAD: `${own}:/x/liba.so` }, 'auto', () => assert.fail('not looked up: the operator named one'));
  assert.equal(k.allocator, 'jemalloc');
  assert.equal(k.path, own);
  assert.equal(k.env.LD_PRELOAD, `/x/liba.so:${own}`);
});

test('mallocEnv system: takes jemalloc out of LD_PRELOAD and keeps the rest', () => {
  assert.deepEqual(mallocEnv({ LD_PRELOAD: `/x/liba.so:${LIB}` }, 'system', found), { env: { LD_PRELOAD: '/x/liba.so' }, allocator: 'system' });
  const r = mallocEnv({ LD_PRELOAD: LIB, A: '1' }, 'system', found);
  assert.deepEqual(r.env, { A: '1' }, 'an LD_PRELOAD left empty is removed, not set to ""');
});

test('mallocEnv jemalloc: a clear error when it is not installed', () => {
  assert.throws(() => mallocEnv({}, 'jemalloc', none), (err: Error) => {
    assert.match(err.message, /^jemalloc was asked for but is not installed \(looked in \/usr\/lib\/x86_64-linux-gnu\/libjemalloc\.so\.2, /);
    assert.match(err.message, /apt-get install libjemalloc2/);
    return true;
  });
});

test('mallocInUse reads the path column of the memory map', () => {
  const maps = (lib: string): string =>
    [
      '55d0c0a00000-55d0c0c00000 r--p 00000000 fd:01 123 /usr/bin/node',
      `7f1c2a000000-7f1c2a040000 r-xp 00000000 fd:01 456 ${lib}`,
      '7ffd3c000000-7ffd3c021000 rw-p 00000000 00:00 0 [stack]',
    ].join('\n');
  assert.equal(mallocInUse(1, () => maps(LIB)), 'jemalloc');
  assert.equal(mallocInUse(1, () => maps('/usr/lib/x86_64-linux-gnu/libc.so.6')), 'system');
  assert.equal(mallocInUse(1, () => maps('/home/u/not-libjemalloc.so.2.txt')), 'system', 'only a file named libjemalloc.so*');
  assert.equal(
    mallocInUse(1, () => {
      throw new Error('ENOENT');
    }),
    'unknown',
  );
});

/** Starts node with env, waits for it to run, and returns what its memory map shows. */
async function childMalloc(env: NodeJS.ProcessEnv): Promise<string> {
  const child = spawn(process.execPath, ['-e', 'process.stdout.write("up\\n"); setTimeout(() => {}, 30000)'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
    });
    return mallocInUse(child.pid!);
  } finally {
    child.kill('SIGKILL');
  }
}

test('a child started with the environment runs on what it says (real processes, /proc maps)', async () => {
  const base = mallocEnv(process.env, 'system').env;
  assert.equal(await childMalloc(base), 'system');
  const lib = findJemalloc();
  const auto = mallocEnv(base, 'auto');
  if (lib === undefined) {
    // Not installed on this machine: auto falls back, jemalloc is refused before anything starts.
    assert.equal(auto.allocator, 'system');
    assert.equal(await childMalloc(auto.env), 'system');
    assert.throws(() => mallocEnv(base, 'jemalloc'), /not installed/);
  } else {
    assert.equal(auto.allocator, 'jemalloc');
    assert.equal(await childMalloc(auto.env), 'jemalloc');
    assert.equal(await childMalloc(mallocEnv(auto.env, 'system').env), 'system');
  }
  assert.equal(mallocInUse(2 ** 22 + 12345), 'unknown', 'a pid that does not exist');
});
