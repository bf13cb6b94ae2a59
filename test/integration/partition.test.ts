/**
 * A backup cut off by a real partition (blackhole routes between network namespaces) for 8 s under
 * load, then healed: it must catch up with the others within seconds. Before links had heartbeats,
 * the TCP connections to and from it stayed "open" with their retransmissions backed off, and the
 * healed replica stayed behind (still at the sequence number of the cut 10 s after the heal, and
 * after the load stopped). Skipped with a message where namespaces cannot be made (not root).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Namespaces, probeNamespaces } from '../../src/nemesis/netns.ts';
import { ReplicaSet } from '../../src/nemesis/replicas.ts';
import { Workload } from '../../src/nemesis/workload.ts';
import { Prng } from '../../src/sim/prng.ts';
import { checkLinearizable, formatViolation } from '../../src/check/linearizability.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('a backup partitioned for 8 s under load catches up after the heal', async (t) => {
  const why = probeNamespaces();
  if (why !== undefined) {
    t.skip(`network namespaces unavailable: ${why}`);
    return;
  }
  const spaces = new Namespaces(4);
  const dir = mkdtempSync(join(tmpdir(), 'pbft-partition-'));
  let set: ReplicaSet | undefined;
  try {
    spaces.create();
    set = new ReplicaSet(dir, [0, 1, 2, 3].map((i) => `ws://${spaces.address(i)}:7001`), 9, (i) => spaces.exec(i));
    for (let i = 0; i < 4; i++) set.start(i);
    const s = set;
    for (let i = 0; i < 300; i++) {
      const all = await s.statuses(500);
      if (all.every((x) => x !== undefined && x.transport.replicasConnected.length === 3)) break;
      await sleep(200);
    }
    const t0 = performance.now();
    const workload = new Workload(s.keysDir, { clients: 6, keys: 4, opTimeoutMs: 10_000 }, new Prng(5), () => performance.now() - t0);
    await workload.start();
    await sleep(2_000);
    const isolated = 3;
    for (const j of [0, 1, 2]) {
      spaces.cut(isolated, j);
      spaces.cut(j, isolated);
    }
    spaces.cut(isolated, 'clients');
    await sleep(8_000);
    spaces.heal();
    const healedAt = performance.now();
    let caughtUp: number | undefined;
    while (performance.now() - healedAt < 30_000) {
      const all = await s.statuses(500);
      const others = all.filter((x, i) => i !== isolated && x !== undefined).map((x) => x!.lastExecuted);
      const mine = all[isolated]?.lastExecuted ?? 0;
      // Within a few batches of the slowest of the others while the load goes on.
      if (others.length === 3 && mine >= Math.min(...others) - 20 && mine > 0) {
        caughtUp = performance.now() - healedAt;
        break;
      }
      await sleep(250);
    }
    await workload.stop();
    const stats = (await s.status(isolated))?.transport;
    assert.ok(caughtUp !== undefined, `replica ${isolated} did not catch up within 30 s of the heal`);
    process.stderr.write(`partition: replica ${isolated} caught up ${(caughtUp! / 1000).toFixed(1)} s after the heal; its silent links closed: ${stats?.silentLinksClosed}\n`);
    const result = checkLinearizable(workload.history.ops());
    assert.ok(result.ok, result.ok ? '' : formatViolation(result));
  } finally {
    await set?.destroy();
    assert.deepEqual(spaces.destroy(), []);
    rmSync(dir, { recursive: true, force: true });
  }
});
