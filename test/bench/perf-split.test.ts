/**
 * bench/perf-split.ts: the category of a perf sample from its stack, and the sums by process kind
 * from `perf script` text (synthetic here: the tests do not need perf). Also the clear errors of
 * the bench's profiling tools on bad input: `--perf` where perf is missing, a directory without a
 * recording, profile-top.ts on a path that does not exist.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import test from 'node:test';
import { categorize, formatSplit, splitPerfScript, type Frame } from '../../bench/perf-split.ts';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const K = '[kernel.kallsyms]';
const NODE = '/usr/bin/node';
const f = (sym: string, dso: string): Frame => ({ sym, dso });

test('a sample goes to the category of the function it was in', () => {
  const cases: Array<[Frame[], string]> = [
    [[f('fe25519_mul', '/x/node_modules/sodium-native/prebuilds/linux-x64/sodium-native.node')], 'ed25519'],
    [[f('ossl_ed25519_verify', NODE)], 'ed25519'],
    [[f('JS:*receive file:///x/src/core/replica.ts:1:754', '/tmp/perf-123.map')], 'JavaScript'],
    [[f('Builtins_LoadIC', NODE)], 'V8 builtins'],
    [[f('Builtins_CreateTypedArray', NODE)], 'ArrayBuffers'],
    [[f('v8::internal::BackingStore::Allocate', NODE)], 'ArrayBuffers'],
    [[f('v8::internal::Scavenger::ScavengeObject<v8::internal::FullHeapObjectSlot>', NODE)], 'GC'],
    [[f('v8::internal::ConcurrentMarking::RunMajor', NODE)], 'GC'],
    [[f('v8::internal::compiler::GraphReducer::ReduceTop', NODE)], 'V8 compiler'],
    [[f('v8::internal::LookupIterator::LookupInRegularHolder<false>', NODE)], 'V8 runtime'],
    [[f('free', '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2')], 'malloc'],
    [[f('_int_malloc', '/usr/lib/x86_64-linux-gnu/libc.so.6')], 'malloc'],
    [[f('__memmove_avx512_unaligned_erms', '/usr/lib/x86_64-linux-gnu/libc.so.6')], 'libc'],
    [[f('sha256_block_data_order_shaext', NODE)], 'hashing'],
    [[f('rocksdb::InlineSkipList<rocksdb::MemTableRep::KeyComparator const&>::Insert', '/x/node_modules/rocksdb/prebuilds/linux-x64/node.napi.glibc.node')], 'RocksDB'],
    [[f('node::StreamBase::WriteBuffer', NODE)], 'Node and libuv'],
    [[f('napi_get_cb_info', NODE)], 'Node and libuv'],
    // The kernel: the first frame from the leaf up that says what it was doing decides.
    [[f('pvm_irq_enable', K), f('_raw_spin_unlock_irqrestore', K), f('sock_def_readable', K), f('tcp_data_queue', K)], 'kernel: network'],
    [[f('pvm_irq_enable', K), f('finish_task_switch.isra.0', K), f('__schedule', K), f('schedule', K), f('do_epoll_wait', K)], 'kernel: scheduling'],
    [[f('pvm_irq_enable', K), f('io_schedule', K), f('folio_wait_bit', K), f('ext4_sync_file', K)], 'kernel: disk'],
    [[f('native_set_pte', K), f('do_anonymous_page', K), f('handle_mm_fault', K)], 'kernel: memory'],
    // A system call's entry, nothing said in the kernel: what the process called it for.
    [[f('fdget_pos', K), f('do_syscall_64', K), f('read', '/usr/lib/x86_64-linux-gnu/libc.so.6'), f('uv__read', NODE)], 'kernel: network'],
    [[f('vfs_write', K), f('do_syscall_64', K), f('__libc_pwrite64', '/usr/lib/x86_64-linux-gnu/libc.so.6')], 'kernel: disk'],
    [[f('__get_user_8', K), f('do_syscall_64', K)], 'kernel: other'],
    [[f('std::string::reserve', '/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30')], 'other'],
    [[], 'other'],
  ];
  for (const [stack, want] of cases) assert.equal(categorize(stack), want, `${stack[0]?.sym ?? '(empty)'}`);
});

/** `perf script -F comm,pid,tid,ip,sym,dso` output: a header per sample, its frames, a blank line. */
function sample(pid: number, tid: number, frames: Array<[string, string]>, comm = 'node'): string {
  return `${comm} ${pid}/${tid}\n` + frames.map(([sym, dso], i) => `\t    ${(0x1000 + i).toString(16)} ${sym}+0x1f (${dso})\n`).join('') + '\n';
}

test('perf script text adds up by process kind, main thread and category', async () => {
  const sodium = '/x/sodium-native.node';
  const text = [
    sample(100, 100, [['fe25519_mul', sodium]]),
    sample(100, 100, [['JS:*flush file:///x/src/core/replica.ts:1:3985', '/tmp/perf-100.map'], ['Builtins_JSEntry', NODE]]),
    sample(100, 107, [['v8::internal::Scavenger::ScavengePage', NODE]]), // a GC helper thread
    sample(101, 101, [['fe25519_mul', sodium]]),
    sample(200, 200, [['tcp_sendmsg', K], ['sock_write_iter', K], ['write', '/usr/lib/x86_64-linux-gnu/libc.so.6']], 'node worker'),
    sample(300, 300, [['something', '/usr/bin/other']], 'other'),
    sample(0, 0, [['pvm_safe_halt_hc', K]], 'swapper'),
  ].join('');
  const split = await splitPerfScript(text.split('\n'), { run: 'cluster', kinds: { '100': 'replicas', '101': 'replicas', '200': 'clients' }, requests: 10, seconds: 1, frequency: 1000 });
  assert.equal(split.totalSamples, 7);
  assert.equal(split.idleSamples, 1);
  assert.equal(split.outsideSamples, 1);
  const replicas = split.kinds.find((k) => k.kind === 'replicas')!;
  assert.deepEqual(
    { processes: replicas.processes, samples: replicas.samples, mainThread: replicas.mainThread, cpuSeconds: replicas.cpuSeconds },
    { processes: 2, samples: 4, mainThread: 3, cpuSeconds: 0.004 },
  );
  assert.deepEqual(replicas.categories, { ed25519: 2, JavaScript: 1, GC: 1 });
  const clients = split.kinds.find((k) => k.kind === 'clients')!;
  assert.deepEqual(clients.categories, { 'kernel: network': 1 });
  const lines = formatSplit(split);
  assert.match(lines[0]!, /^ {2}cluster {3}replicas \(2\): 0\.00 CPU s = 400 us per request, 75% on main threads; ed25519 50\.0%, JavaScript 25\.0%, GC 25\.0%$/);
  assert.match(lines[1]!, /clients \(1\): .* = 100 us per request, 100% on main threads; kernel: network 100\.0%$/);
  assert.match(lines[2]!, /of all samples: idle 14\.3%, other processes 14\.3%/);
});

test('the profiling tools refuse bad input with one line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'perf-split-test-'));
  try {
    // perf-split.ts on a directory without a recording.
    const a = spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bench', 'perf-split.ts'), dir], { cwd: REPO_ROOT, encoding: 'utf8' });
    assert.equal(a.status, 1, a.stderr);
    assert.match(a.stderr, /^perf-split: .* holds no perf recording \(pids\.json and perf\.data: bench --perf DIR writes DIR\/<run>\/\)\n$/);
    // profile-top.ts on a path that does not exist, and with a bad --top.
    const b = spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bench', 'profile-top.ts'), join(dir, 'cluster', 'client-0')], { cwd: REPO_ROOT, encoding: 'utf8' });
    assert.equal(b.status, 1, b.stderr);
    assert.match(b.stderr, /^profile-top: .*client-0 does not exist \(bench --profile DIR writes DIR\/<run>\/<process>\/, e\.g\. DIR\/cluster\/replica-1\)\n$/);
    const c = spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bench', 'profile-top.ts'), '--top', 'x', dir], { cwd: REPO_ROOT, encoding: 'utf8' });
    assert.equal(c.status, 1, c.stderr);
    assert.match(c.stderr, /^profile-top: --top must be a positive integer, got x\n$/);
    // bench --perf where no perf can be found: one line, before anything runs.
    const d = spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bench', 'bench.ts'), '--only', 'crypto', '--perf', dir], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      env: { ...process.env, PATH: join(dir, 'no-such-bin') },
    });
    assert.equal(d.status, 2, d.stderr);
    assert.match(d.stderr, /^npm run bench: --perf needs Linux perf, which is not installed here \(.*; Debian: apt-get install linux-perf\)\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
