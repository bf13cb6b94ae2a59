/**
 * Smoke run of `npm run bench`: every part of the default suite (crypto floor, baseline with 1 and N
 * clients, a 4-replica cluster with N clients and with 1 client, a 7-replica cluster, ordered and
 * read-only gets with N clients and with 1, the crash-fault mode with N clients and with 1, the
 * cluster with verify worker threads) with a few
 * clients for about a second each. It checks that the run completes, prints every figure of the
 * report and writes its JSON record, and that requests completed. No timing assertions: the numbers
 * of a run this short on a busy machine mean nothing, only that they are there.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import test from 'node:test';
import { findJemalloc } from '../../src/node/malloc.ts';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bench', 'bench.ts'), ...args], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Runs the bench with `args` and a --json-file record in a fresh temporary directory, checks that it
 * exited 0, hands `check` its output and the record's path, and removes the directory after.
 */
async function runRecorded(prefix: string, args: string[], check: (out: { stdout: string; stderr: string; record: string }) => void | Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    const record = join(dir, 'record.json');
    const { code, stdout, stderr } = await run([...args, '--json-file', record]);
    assert.equal(code, 0, `bench exited with ${code}\nstdout:\n${stdout}\nstderr:\n${stderr}`);
    await check({ stdout, stderr, record });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every run of the default suite (a row each in the table). */
const RUNS = ['baseline-1', 'baseline', 'cluster', 'latency', 'cluster7', 'get-ordered', 'get-readonly', 'get-ordered-1', 'get-readonly-1', 'crash', 'crash-1', 'pool'];

/** The number in a table cell such as "1,234.5", or NaN. */
const num = (cell: string | undefined): number => Number((cell ?? '').replace(/,/g, ''));

test('npm run bench: a short run of the whole suite prints every figure and writes its record', { timeout: 300_000 }, async () => {
  await runRecorded('pbft-bench-smoke-', ['--duration', '1', '--warmup', '0.3', '--clients', '4', '--client-procs', '1', '--floor-seconds', '0.1', '--idle-seconds', '1'], async ({ stdout, stderr, record }) => {

    // The crypto floor: per-operation microseconds and requests/s for n = 4 and 7.
    assert.match(stdout, /sign request [\d.,]+ us, verify request [\d.,]+ us, verify reply [\d.,]+ us/);
    assert.match(stdout, /n=4: .* floor [\d,]+ requests\/s/);
    assert.match(stdout, /n=7: .* floor [\d,]+ requests\/s/);

    // The table: one row per run, with requests, throughput, latencies and CPU s/request.
    const rows = new Map<string, string[]>();
    for (const line of stdout.split('\n')) {
      const cells = line.trim().split(/\s{2,}/);
      // The first line naming a run is its table row (later sections name runs too).
      if (RUNS.includes(cells[0]!) && !rows.has(cells[0]!)) rows.set(cells[0]!, cells);
    }
    for (const name of RUNS) {
      const cells = rows.get(name);
      assert.ok(cells !== undefined, `a row for ${name} in:\n${stdout}`);
      const [, , clients, requests, perSecond, p50, p99, max, cpuPerRequest] = cells;
      assert.ok(num(clients) >= 1, `${name}: clients`);
      assert.ok(num(requests) > 0, `${name}: requests completed (${requests})`);
      for (const [what, v] of Object.entries({ perSecond, p50, p99, max, cpuPerRequest })) {
        assert.ok(Number.isFinite(num(v)) && num(v) > 0, `${name}: ${what} is a positive number (${v})`);
      }
    }
    assert.match(stdout, /cluster \(4 replicas\) \/ crypto floor n=4\s+[\d.]+/);
    assert.match(stdout, /cluster throughput \/ baseline throughput\s+[\d.]+/);
    assert.match(stdout, /1-client p50: cluster \/ baseline\s+[\d.]+/);
    assert.match(stdout, /cluster7 \/ cluster throughput\s+[\d.]+/);
    // The cluster left without clients: each replica's CPU and tick-timer wake-ups.
    assert.match(stdout, /idle: the latency run's replicas without clients .*replica 0 [\d.]+%, replica 1 [\d.]+%, replica 2 [\d.]+%, replica 3 [\d.]+% of a core; tick-timer wake-ups per second [\d.]+, [\d.]+, [\d.]+, [\d.]+/);
    // The reads part: ordered against read-only gets, throughput and 1-client latency side by side.
    assert.match(stdout, /gets: read-only \/ ordered throughput\s+[\d.]+/);
    assert.match(stdout, /verify pool \(1 worker per replica\) \/ on the loop: throughput [\d.]+, CPU per request [\d.]+: the pool (helps|costs|changes nothing)/);
    assert.match(stdout, /gets, 1 client: read-only \/ ordered p50\s+[\d.]+/);
    assert.match(stdout, /^\s+4 clients: req\/s\s+[\d.,]+\s+[\d.,]+\s+[\d.]+x$/m);
    assert.match(stdout, /^\s+1 client: p50 ms\s+[\d.,]+\s+[\d.,]+\s+[\d.]+x$/m);
    assert.match(stdout, /get-readonly-1: [\d,]+ of [\d,]+ read-only gets answered unordered/);
    // The crash part: a 3-replica crash-mode cluster next to the byzantine one.
    assert.match(stdout, /^fault models: byzantine \(n = 3f\+1, quorums 2f\+1\) vs crash \(n = 2f\+1, quorums f\+1\), f = 1/m);
    assert.match(stdout, /^\s+byzantine \(4\)\s+crash \(3\)\s+crash \/ byzantine$/m);
    // The synced write the 1-client target adds to the baseline, measured in the same run.
    assert.match(stdout, /^synced write \(RocksDB write\(ops, \{ sync: true \}\), .*\): p50 [\d.]+ ms, p99 [\d.]+ ms/m);
    assert.match(stdout, /^\s+\[(MET|MISSED)\] 1 client: p50 latency <= 1\.5 x \(baseline p50 \+ one synced write\): [\d.]+ ms vs 1\.5 x \([\d.]+ \+ [\d.]+\) = [\d.]+ ms$/m);
    assert.match(stdout, /^targets$/m);
    assert.equal((stdout.match(/^\s+\[(MET|MISSED)\] /gm) ?? []).length, 5, 'five targets judged');
    // The client SDK's CPU per request against its signature work, both from this run, and how many
    // signature checks the workers' shared cache answered.
    assert.match(stdout, /^\s+\[(MET|MISSED)\] client SDK: CPU per request <= 1\.5 x its signature work \(1 sign \+ f\+1 verifies\): [\d.,]+ us per request \(client workers: .*\) vs [\d.,]+ us \(sign [\d.,]+ \+ 2 x verify reply [\d.,]+\) = [\d.]+x; signature checks [\d.]+ per request, [\d.]+% answered by the workers' shared cache \(4 clients in 1 processes\), so [\d.]+ verifies ran per request and the CPU outside the signatures that ran is -?[\d.,]+ us$/m);
    assert.match(stderr, /measuring/, 'a progress line');
    // The frame cost beside the crypto floor, and each run's CPU per request split with it.
    assert.match(stdout, /^frame cost \(bench\/frame-cost\.ts: 320-byte binary WebSocket frames .*\): [\d.]+ us per frame with one in flight, [\d.]+ us with 64 connections$/m);
    assert.match(stdout, /^  the same over plain TCP streams \(no WebSocket, .*\): [\d.]+ us and [\d.]+ us; WebSocket framing \(ws\) adds -?[\d.]+ and -?[\d.]+ us$/m);
    // The wake-up cost beside it, and each run's wait for a core (Linux schedstat: where it exists).
    assert.match(stdout, /^wake-up cost \(bench\/wakeup-cost\.ts: .*, \d+ rounds each\): [\d.,]+ us after 1 ms asleep, [\d.,]+ us after 20 ms/m);
    if (existsSync('/proc/self/schedstat')) {
      for (const name of ['baseline-1', 'baseline', 'cluster', 'latency', 'cluster7']) {
        const servers = name.startsWith('baseline') ? 1 : name === 'cluster7' ? 7 : 4;
        assert.match(
          stdout,
          new RegExp(`^  ${name}\\s+main threads ${Array(servers).fill('[\\d,]+').join(' \\+ ')} = [\\d,]+ us; all server threads [\\d,]+ us; client workers [\\d,]+ us \\(p50 [\\d,]+ us, mean [\\d,]+ us\\)$`, 'm'),
          `${name}: the wait for a core`,
        );
      }
    }
    for (const name of ['cluster', 'latency', 'cluster7']) {
      assert.match(stdout, new RegExp(`^  ${name}\\s+[\\d,]+ us = signatures [\\d,]+ us \\(\\d+%\\) \\+ frames [\\d.]+ x [\\d.]+ us = [\\d,]+ us \\(\\d+%\\) \\+ the rest -?[\\d,]+ us \\(-?\\d+%\\)$`, 'm'), `${name}: the CPU split`);
    }
    // The clients' retransmissions (the requests named their repliers: --replies quorum, the default).
    assert.match(stdout, /^\s+cluster\s+clients: [\d.]+% of the requests retransmitted \([\d,]+ of [\d,]+, --replies quorum\)/m);
    assert.match(stdout, /^\s+cluster\s+replica 1: .* synced writes \([\d,]+ us each\), [\d.]+ horizon records \([\d,]+ us each\), [\d.]+ loop turns, frames [\d.]+ out \([\d.]+ to clients\) \/ [\d.]+ in \([\d.]+ from clients\)(; own checkpoint pending [\d.]+% of the window, [\d.]+ batches\/s then, [\d.]+ otherwise)?$/m);
    // The allocator (--malloc auto): jemalloc where installed, and the replicas' own word for it.
    const lib = findJemalloc();
    assert.match(
      stdout,
      lib !== undefined
        ? /^malloc of every process started: jemalloc \(.*libjemalloc\.so\.2, LD_PRELOAD\); a replica's memory map shows jemalloc$/m
        : /^malloc of every process started: the system's; a replica's memory map shows no jemalloc$/m,
    );

    // The JSON record: machine, command, every run.
    const json = JSON.parse(readFileSync(record, 'utf8')) as {
      command: string;
      machine: { cores: number; cpuModel: string; node: string; malloc: { allocator: string; seen?: string } };
      cryptoFloor: { byReplicas: Record<string, { requestsPerSecond: number }> };
      frameCost: { oneInFlightUs: number; manyInFlightUs: number; plain: { oneInFlightUs: number; manyInFlightUs: number } };
      wakeupCost: { after1msUs: number; after20msUs: number };
      syncedWrite: { count: number; ms: { p50: number } };
      runs: Array<{ run: string; requests: number; cpuSecondsPerRequest: number }>;
      idle: { run: string; cores: number[]; tickWakeupsPerSecond: number[] };
    };
    assert.ok(json.machine.cores >= 1 && json.machine.cpuModel !== '' && json.machine.node.startsWith('v'));
    assert.deepEqual([json.machine.malloc.allocator, json.machine.malloc.seen], lib !== undefined ? ['jemalloc', 'jemalloc'] : ['system', 'system']);
    assert.match(json.command, /--duration 1/);
    assert.ok(json.cryptoFloor.byReplicas['4']!.requestsPerSecond > 0);
    assert.ok(json.syncedWrite.count > 0 && json.syncedWrite.ms.p50 > 0, 'the synced write in the record');
    assert.equal(json.idle.run, 'latency');
    assert.equal(json.idle.cores.length, 4);
    assert.ok(json.idle.cores.every((c) => Number.isFinite(c) && c >= 0) && json.idle.tickWakeupsPerSecond.every((w) => w > 0), JSON.stringify(json.idle));
    assert.deepEqual(json.runs.map((r) => r.run).sort(), [...RUNS].sort());
    for (const r of json.runs) assert.ok(r.requests > 0, `${r.run}: requests in the record`);
    assert.ok(json.frameCost.oneInFlightUs > 0 && json.frameCost.manyInFlightUs > 0, 'the frame cost in the record');
    assert.ok(json.frameCost.plain.oneInFlightUs > 0 && json.frameCost.plain.manyInFlightUs > 0, 'the plain-stream frame cost in the record');
    assert.ok(json.wakeupCost.after1msUs > 0 && json.wakeupCost.after20msUs > 0, 'the wake-up cost in the record');
    // Every frame of a cluster run once: at least the request and f+1 replies per request.
    const cluster = json.runs.find((r) => r.run === 'cluster') as { framesPerRequest?: number; work?: Array<{ horizonWrites: number; horizonWaitUs: number }> } | undefined;
    assert.ok(cluster?.framesPerRequest !== undefined && cluster.framesPerRequest >= 3, `frames per request in the record (${cluster?.framesPerRequest})`);
    // The horizon record is rewritten at least every stable checkpoint and lazily as execution moves.
    const horizon = cluster?.work?.filter((w) => w.horizonWrites > 0 && w.horizonWaitUs > 0) ?? [];
    assert.ok(horizon.length > 0, `horizon record writes and their wait in the record: ${JSON.stringify(cluster?.work)}`);
  });
});

test('npm run bench -- --keys 2000: loads the keys, compares with the empty store before and after, restarts a replica, prints RSS and three targets', { timeout: 300_000 }, async () => {
  await runRecorded('pbft-bench-keys-smoke-', ['--keys', '2000', '--duration', '1', '--warmup', '0.3', '--clients', '4', '--client-procs', '1'], async ({ stdout, stderr, record }) => {
    assert.match(stdout, /^keys-empty\s+4\s+4\s+[\d,]+\s+[\d.,]+/m);
    assert.match(stdout, /^keys-2000\s+4\s+4\s+[\d,]+\s+[\d.,]+/m);
    assert.match(stdout, /^keys-empty-after\s+4\s+4\s+[\d,]+\s+[\d.,]+/m);
    assert.match(stdout, /^\s+load time\s+[\d.,]+ s \([\d,]+ keys\/s\); executed everywhere at [\d.,]+ s, its checkpoint stable at [\d.,]+ s \(\d+ puts\)$/m);
    assert.match(stdout, /^\s+throughput, 4 clients: empty -> loaded -> empty again\s+[\d.,]+ -> [\d.,]+ -> [\d.,]+ req\/s \(loaded [\d.]+% of the mean of both empty runs; [\d.]+% of the first alone\)$/m);
    // The target is judged against the mean of the two empty runs, each named in its line.
    assert.match(stdout, /^\s+\[(MET|MISSED)\] 2,000 keys: throughput >= 80% of the empty store: [\d,]+ vs [\d,]+ req\/s \(the empty store [\d,]+ before the load, [\d,]+ after it\) = [\d.]+%$/m);
    assert.match(stdout, /^\s+restart of replica 3 \(SIGKILL\)\s+\/status [\d.]+ s, caught up [\d.]+ s, executing [\d.]+ s; of it reading [\d,]+ records [\d.]+ s, rebuilding from them [\d.]+ s$/m);
    assert.match(stdout, /^\s+replica RSS after load \(MiB\)\s+[\d,]+ [\d,]+ [\d,]+ [\d,]+/m);
    assert.match(stdout, /^\s+replica RSS after restart \(MiB\)\s+[\d,]+ [\d,]+ [\d,]+ [\d,]+$/m);
    // Read from each replica's /status counters at the load's end (a '-' would be a failed read).
    assert.match(stdout, /^\s+view changes during the load\s+\d+ \d+ \d+ \d+  \(the cluster started with the load\)$/m);
    assert.match(stdout, /^\s+late turns during the load\s+([\d,]+ \([\d,]+\.\d s dropped\)\s+){3}[\d,]+ \([\d,]+\.\d s dropped\)  \(turns that came more than 100 ms late/m);
    assert.match(stdout, /^\s+own checkpoints finished at once\s+(\d+\/\d+ \(\d+ partitions\)\s+){4}\(/m);
    // Each replica's longest event-loop stall, read from its /metrics (a '-' would be a failed read).
    assert.match(stdout, /^\s+longest event-loop stall \(s\)\s+during the load [\d.]+ [\d.]+ [\d.]+ [\d.]+; throughput run after it [\d.]+ [\d.]+ [\d.]+ [\d.]+$/m);
    assert.match(stdout, /^\s+replica CPU during the load \(s\)\s+[\d.]+ [\d.]+ [\d.]+ [\d.]+  \(until its checkpoint was stable everywhere; GC minor\+major [\d.]+\+[\d.]+ [\d.]+\+[\d.]+ [\d.]+\+[\d.]+ [\d.]+\+[\d.]+\)$/m);
    assert.match(stdout, /^\s+replica CPU by thread, throughput run \(s\)\s+main [\d.]+/m);
    // Each replica's RocksDB levels and compactions, from its /status storage (a '-' would be a failed read).
    assert.match(stdout, /^\s+RocksDB after the load \(MiB per level, from level 0\)\s+([\d,]+(\/[\d,]+)+\s+){3}[\d,]+(\/[\d,]+)+$/m);
    assert.match(stdout, /^\s+RocksDB flushes and compactions over the load\s+([\d.]+ GB written \([\d.]+ of it flushed\) in [\d.]+ s, [\d,]+ write stalls(; |$)){4}/m);
    assert.match(stdout, /^\s+RocksDB flushes and compactions in the throughput run \(warm-up included\)\s+([-\d.]+ GB written \([-\d.]+ of it flushed\) in [-\d.]+ s(; |$)){4}/m);
    assert.equal((stdout.match(/^\s+\[(MET|MISSED)\] 2,000 keys: /gm) ?? []).length, 3, 'three targets judged');
    assert.match(stderr, /replica 3 \(pid \d+\) killed with SIGKILL/);
    const json = JSON.parse(readFileSync(record, 'utf8')) as { runs: Array<{ run: string; requestsPerSecond: number }>; ratios: Record<string, number>; keys: { empty: string; loaded: string; emptyAfter: string; keys: number; loadSeconds: number; executedSeconds: number; checkpointedSeconds: number; loadHead: number; stableSeqs: number[]; restart: { executingSeconds: number; recovery?: { records: number; readSeconds: number; rebuildSeconds: number } }; stallDuringLoad: number[]; cpuDuringLoad: number[]; gcDuringLoad: Array<{ minor: number; major: number }>; threadCpuLoaded: Array<Record<string, number>>; recordsFound: Array<{ ahead: number; inTurn: number; again: number; batches: number; checkpointsStable: number }> } };
    assert.equal(json.keys.keys, 2000);
    assert.deepEqual([json.keys.empty, json.keys.loaded, json.keys.emptyAfter], ['keys-empty', 'keys-2000', 'keys-empty-after']);
    const rps = (name: string): number => json.runs.find((r) => r.run === name)!.requestsPerSecond;
    const mean = (rps('keys-empty') + rps('keys-empty-after')) / 2;
    assert.ok(Math.abs(json.ratios.keysLoadedToEmptyThroughput! - rps('keys-2000') / mean) < 1e-9, 'the ratio is against the mean of both empty runs');
    assert.ok(Math.abs(json.ratios.keysLoadedToEmptyBeforeThroughput! - rps('keys-2000') / rps('keys-empty')) < 1e-9);
    assert.ok(json.keys.loadSeconds > 0 && json.keys.restart.executingSeconds > 0);
    // The restarted replica's /status recovery: it read at least the 2,000 keys' partitions and the log.
    const recovery = json.keys.restart.recovery;
    assert.ok(recovery !== undefined && recovery.records > 100 && recovery.readSeconds >= 0 && recovery.rebuildSeconds >= 0, JSON.stringify(recovery));
    assert.ok(json.keys.checkpointedSeconds >= json.keys.executedSeconds && json.keys.executedSeconds >= json.keys.loadSeconds, 'load, executed, checkpointed in order');
    // The throughput run began once every replica's stable checkpoint covered the load.
    assert.ok(json.keys.loadHead > 0);
    assert.equal(json.keys.stableSeqs.length, 4);
    for (const seq of json.keys.stableSeqs) assert.ok(seq >= json.keys.loadHead, `stable checkpoint ${seq} below the load's ${json.keys.loadHead}`);
    assert.equal(json.keys.stallDuringLoad.length, 4);
    for (const x of json.keys.stallDuringLoad) assert.ok(Number.isFinite(x) && x >= 0, `stall ${x}`);
    // The replicas' CPU and GC over the load (/proc and /metrics), and their counters when it was checkpointed.
    assert.equal(json.keys.cpuDuringLoad.length, 4);
    for (const x of json.keys.cpuDuringLoad) assert.ok(Number.isFinite(x) && x > 0, `CPU ${x}`);
    for (const g of json.keys.gcDuringLoad) assert.ok(Number.isFinite(g.minor) && g.minor >= 0 && Number.isFinite(g.major) && g.major >= 0, `GC ${JSON.stringify(g)}`);
    for (const t of json.keys.threadCpuLoaded) assert.ok((t.main ?? 0) > 0, `thread CPU ${JSON.stringify(t)}`);
    for (const r of json.keys.recordsFound) {
      assert.ok(r.batches > 0 && r.checkpointsStable >= 1, `counters ${JSON.stringify(r)}`);
      assert.ok(r.ahead + r.inTurn > 0 && r.again >= 0, `records found ${JSON.stringify(r)}`);
    }
  });
});

test('npm run bench -- --repeat 2: the floor and the cluster twice, every target judged in each and over both', { timeout: 300_000 }, async () => {
  await runRecorded('pbft-bench-repeat-', ['--only', 'crypto,cluster', '--repeat', '2', '--duration', '1', '--warmup', '0.3', '--clients', '4', '--client-procs', '1', '--floor-seconds', '0.1', '--idle-seconds', '0'], async ({ stdout, record }) => {
    assert.match(stdout, /=== repetition 1 of 2 ===/);
    assert.match(stdout, /=== repetition 2 of 2 ===/);
    assert.equal(stdout.match(/^cluster +4 +4 /gm)?.length, 2, `a cluster row per repetition:\n${stdout}`);
    const at = stdout.indexOf('targets over 2 repetitions');
    assert.ok(at >= 0, `the verdicts over both:\n${stdout}`);
    const summary = stdout.slice(at);
    assert.match(summary, /\[(MET|MISSED)\] 4 replicas x 4 clients: throughput >= 60% of the crypto floor: met in [012] of 2/);
    assert.match(summary, /\[(MET|MISSED)\] client SDK: .*: met in [012] of 2/);
    const json = JSON.parse(readFileSync(record, 'utf8')) as {
      repeat: number;
      targets: Array<{ name: string; met: boolean; judged: number; metIn: number; details: string[] }>;
      ratios: Record<string, number>;
      repetitions: Array<{ runs: Array<{ run: string; requests: number }>; targets: Array<{ name: string; met: boolean }>; ratios: Record<string, number> }>;
    };
    assert.equal(json.repeat, 2);
    assert.equal(json.repetitions.length, 2);
    for (const r of json.repetitions) {
      const cluster = r.runs.find((l) => l.run === 'cluster');
      assert.ok(cluster !== undefined && cluster.requests > 0, `each repetition ran the cluster: ${JSON.stringify(r.runs.map((l) => [l.run, l.requests]))}`);
      assert.ok(r.ratios.clusterToCryptoFloor! > 0, 'each repetition has its own ratio to its own floor');
    }
    const floorTarget = json.targets.find((x) => x.name.includes('crypto floor'))!;
    assert.equal(floorTarget.judged, 2);
    assert.equal(floorTarget.metIn, json.repetitions.filter((r) => r.targets.find((x) => x.name === floorTarget.name)?.met === true).length);
    const ratios = json.repetitions.map((r) => r.ratios.clusterToCryptoFloor!).sort((a, b) => a - b);
    assert.equal(json.ratios.clusterToCryptoFloor, (ratios[0]! + ratios[1]!) / 2, 'the record keeps the median ratio');
  });
});

test('npm run bench -- --think-ms: each client pauses after each answer, so a window holds at most one request per pause', { timeout: 300_000 }, async () => {
  await runRecorded('pbft-bench-think-', ['--only', 'latency', '--think-ms', '50', '--duration', '1', '--warmup', '0.3', '--idle-seconds', '0'], async ({ stdout, record }) => {
    assert.match(stdout, /^workload: put, .*; each client pauses 50 ms after each answer; /m);
    const json = JSON.parse(readFileSync(record, 'utf8')) as { runs: Array<{ run: string; requests: number; seconds: number }> };
    const latency = json.runs.find((r) => r.run === 'latency');
    assert.ok(latency !== undefined && latency.requests > 0, `the latency run completed requests: ${JSON.stringify(json.runs)}`);
    // One client, 50 ms between an answer and its next request: no more requests than pauses fit the window.
    assert.ok(latency.requests <= Math.ceil((latency.seconds * 1000) / 50) + 1, `${latency.requests} requests in ${latency.seconds} s with 50 ms pauses`);
  });
});

test('npm run bench -- --repeat: a count out of range, or a part that runs once, is refused with one line', async () => {
  const tooMany = await run(['--repeat', '10', '--only', 'crypto']);
  assert.notEqual(tooMany.code, 0);
  assert.match(tooMany.stderr, /--repeat.*must be from 1 to 9/);
  const keys = await run(['--repeat', '2', '--keys', '100']);
  assert.equal(keys.code, 2);
  assert.match(keys.stderr, /--repeat 2 cannot be combined with the keys part/);
  const profile = await run(['--repeat', '3', '--only', 'cluster', '--profile', join(tmpdir(), 'pbft-never-written')]);
  assert.equal(profile.code, 2);
  assert.match(profile.stderr, /--repeat 3 cannot be combined with --profile/);
});

test('npm run bench -- --help describes the options', async () => {
  const { code, stdout } = await run(['--help']);
  assert.equal(code, 0);
  for (const flag of ['--replicas', '--clients', '--duration', '--payload', '--batch-requests-max', '--in-flight-batches-max', '--json', '--only', '--rss', '--profile', '--keys', '--repeat', '--think-ms']) {
    assert.ok(stdout.includes(flag), `--help mentions ${flag}`);
  }
});
