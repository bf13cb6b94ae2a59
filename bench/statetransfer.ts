/**
 * State transfer cost: time to catch up and bytes received, for a replica with an empty data
 * directory (full transfer) and for a replica behind by 1% of the keys (partial transfer: only
 * partitions whose digests differ move), for 10,000 and 100,000 keys (16-byte keys and values).
 *
 * Runs the production core in the deterministic simulator with the built-in key-value store
 * (4,096 partitions) and zlib compression as in the shell. Bytes are counted on the simulated
 * wire (encoded frames, both directions) and as the core reports them; "simulated" time is
 * ticks x 10 ms (a tick is 10 ms in the shell) with 1-3 ticks of network delay per message, and
 * "compute" is the wall time this process spent running the whole cluster during the catch-up.
 *
 *   node --import tsx bench/statetransfer.ts [--keys 10000,100000]
 */
import { SimCluster } from '../src/sim/cluster.ts';
import type { KvOp } from '../src/app/kv-ops.ts';
import { decodeFrame } from '../src/codec/messages.ts';

const arg = process.argv.indexOf('--keys');
const sizes = arg >= 0 ? process.argv[arg + 1]!.split(',').map(Number) : [10_000, 100_000];
const CLIENTS = 64;
const key = (i: number): string => `key-${i.toString().padStart(12, '0')}`; // 16 bytes
const value = (i: number, round: number): string => `v${round}-${i.toString().padStart(13, '0')}`; // 16 bytes

interface Measure {
  /** Content bytes of the transfer replies (digests, compressed partitions, client table), from the core's event. */
  bytesReceived: number;
  /** Content bytes of our own leaf prefixes sent with requests for leaves, from the core's event. */
  bytesSent: number;
  /** Wire bytes of the state-transfer frames received / sent by the lagging replica. */
  wireIn: number;
  wireOut: number;
  /** Wire bytes of every frame the lagging replica received / sent until it caught up. */
  allIn: number;
  allOut: number;
  partitionsFetched: number;
  partitionCount: number;
  ticks: number;
  computeMs: number;
  /** Of which: restarting (recovering from the replica's own disk). */
  restartMs: number;
}

function catchUp(sim: SimCluster, id: number, caughtUpTo: number): Measure {
  const started = performance.now();
  const from = sim.events.length;
  const wire = { in: 0, out: 0, allIn: 0, allOut: 0 };
  const send = sim.net.send.bind(sim.net);
  sim.net.send = (now, src, dst, bytes) => {
    if (src === id || dst === id) {
      const d = decodeFrame(bytes);
      const transfer = d.ok && d.value.kind === 'link' && (d.value.msg.type === 'state' || d.value.msg.type === 'statereq');
      if (dst === id) {
        wire.allIn += bytes.length;
        if (transfer) wire.in += bytes.length;
      } else {
        wire.allOut += bytes.length;
        if (transfer) wire.out += bytes.length;
      }
    }
    send(now, src, dst, bytes);
  };
  sim.restart(id);
  const restartMs = performance.now() - started;
  const done = sim.runUntil(() => {
    const r = sim.hosts[id]!.replica!;
    return !r.status().transferring && r.lastExecuted >= caughtUpTo;
  }, 200_000);
  sim.net.send = send;
  if (!done) throw new Error(`replica ${id} did not catch up`);
  const computeMs = performance.now() - started;
  const completed = sim.events.slice(from).filter((e) => e.replica === id && e.event.type === 'state-transfer-completed');
  if (completed.length === 0) throw new Error('no state transfer happened');
  const m: Measure = {
    bytesReceived: 0,
    bytesSent: 0,
    wireIn: wire.in,
    wireOut: wire.out,
    allIn: wire.allIn,
    allOut: wire.allOut,
    partitionsFetched: 0,
    partitionCount: 0,
    ticks: 0,
    computeMs,
    restartMs,
  };
  for (const e of completed) {
    if (e.event.type !== 'state-transfer-completed') continue;
    m.bytesReceived += e.event.bytesReceived;
    m.bytesSent += e.event.bytesSent;
    m.partitionsFetched += e.event.partitionsFetched;
    m.partitionCount = e.event.partitionCount;
    m.ticks += e.event.ticks;
  }
  return m;
}

function run(keys: number): void {
  let round = 0;
  let base = 0;
  let count = keys;
  // Requests issued by each client in the current phase (a client's timestamps keep counting).
  let issued = new Array<number>(CLIENTS).fill(0);
  const workload = (client: number): KvOp => {
    const i = base + issued[client]!++ * CLIENTS + client;
    return i < base + count ? { type: 'put', key: key(i), value: value(i, round) } : { type: 'get', key: key(0) };
  };
  const perClient = (n: number): number => Math.ceil(n / CLIENTS);
  const sim = new SimCluster({
    seed: 1,
    f: 1,
    clients: CLIENTS,
    requestsPerClient: perClient(keys),
    partitionCount: 4096,
    compress: true,
    workload,
    replica: { checkpointInterval: 16, windowSize: 32, batchRequestsMax: 512 },
  });
  sim.keepEvents = true;
  const t0 = performance.now();
  if (!sim.runUntil(() => sim.allClientsDone(), 2_000_000)) throw new Error('load did not finish');
  sim.run(200);
  const loadMs = performance.now() - t0;
  const stableAfterLoad = sim.hosts[0]!.replica!.h;

  // Full transfer: a new replica (empty data directory).
  sim.crash(3);
  sim.wipe(3);
  const full = catchUp(sim, 3, stableAfterLoad);

  // Partial: replica 3 goes down, 1% of the keys are written (new keys), it comes back.
  sim.crash(3);
  round = 1;
  base = keys;
  issued = new Array<number>(CLIENTS).fill(0);
  count = Math.max(1, Math.floor(keys / 100));
  for (const c of sim.clients) c.remaining = perClient(count);
  const lastBefore = sim.hosts[0]!.replica!.lastExecuted;
  if (!sim.runUntil(() => sim.allClientsDone(), 2_000_000)) throw new Error('1% load did not finish');
  const written = sim.hosts[0]!.app!.size - keys;
  if (written !== count) throw new Error(`expected ${count} new keys, the store has ${written}`);
  // Move a few checkpoints further (reads only: the state stays 1% ahead of replica 3) so that the
  // others' logs no longer hold what replica 3 missed.
  while (sim.hosts[0]!.replica!.h <= lastBefore + 48) {
    for (const c of sim.clients) c.remaining = 1;
    sim.runUntil(() => sim.allClientsDone(), 100_000);
    sim.run(50);
  }
  const target = sim.hosts[0]!.replica!.h;
  if (target <= lastBefore + 32) throw new Error('the log was not truncated past the lagging replica');
  const partial = catchUp(sim, 3, target);

  sim.checker.finish(sim.clients, sim.now);
  if (sim.checker.violations.length) throw new Error(JSON.stringify(sim.checker.violations.slice(0, 2)));
  const digests = new Set(sim.hosts.map((h) => h.replica!.status().stableCheckpoint.digest));
  if (digests.size !== 1) throw new Error('digests did not converge');

  const kib = (b: number): string => `${(b / 1024).toFixed(0)} KiB`;
  const fmt = (m: Measure): string =>
    `transfer frames ${kib(m.wireIn)} in / ${kib(m.wireOut)} out (content ${kib(m.bytesReceived)} / ${kib(m.bytesSent)}), ` +
    `all frames ${kib(m.allIn)} in / ${kib(m.allOut)} out, ${m.partitionsFetched}/${m.partitionCount} partitions, ` +
    `simulated ${m.ticks * 10} ms (${m.ticks} ticks), compute ${m.computeMs.toFixed(0)} ms (of which recovery from its own disk ${m.restartMs.toFixed(0)} ms)`;
  console.log(`${keys} keys (loaded in ${(loadMs / 1000).toFixed(1)} s of simulation, state ~${((keys * 40) / 1024 / 1024).toFixed(1)} MiB raw):`);
  console.log(`  full    (empty data dir)      ${fmt(full)}`);
  console.log(`  partial (behind by 1% keys)   ${fmt(partial)}`);
  const total = (m: Measure): number => m.wireIn + m.wireOut;
  console.log(`  partial / full transfer bytes (in + out): ${((100 * total(partial)) / total(full)).toFixed(1)}%`);
}

for (const keys of sizes) run(keys);
