/**
 * An idle replica sleeps (src/node/loop.ts, Replica.quietTicks): four in-process ReplicaNodes (real
 * transport, real ed25519, the production loop and pipeline) answer some puts and then get no
 * traffic. Their tick timers then wake them a few times a second (the retransmission timer, 25 ticks
 * of 10 ms; the probe, every 2 s), not once per tick (100 a second); a put that comes while they
 * sleep is answered, and the requests' timers (view-change timeouts) still run: no view changes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PbftClient } from '../../src/client/client.ts';
import { InProcessCluster } from './inprocess-cluster.ts';

let ipc: InProcessCluster;
let client: PbftClient;

before(async () => {
  ipc = await InProcessCluster.create({ clients: 1 });
  client = await PbftClient.connect({ cluster: ipc.cluster, key: ipc.clientKey(0), timeoutMs: 30_000 });
});

after(async () => {
  await client?.close();
  await ipc?.stop();
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test('idle replicas wake a few times a second, not every tick; a put while they sleep is answered', async () => {
  for (let i = 0; i < 5; i++) await client.put(`idle/${i}`, `v${i}`);
  const statuses = () => ipc.replicas.map((r) => r.node.status());
  // Settle: the last replies, the catch-up timers (30 ticks after the last execution). Usually under a
  // second; on a loaded machine later, so wait until every replica has slept through half a second
  // (at most 5 tick wake-ups in it; one per tick would be 50), for up to 30 s. A replica that never
  // sleeps fails here.
  for (let settled = false, waited = 0; !settled; waited += 500) {
    assert.ok(waited < 30_000, 'the replicas never went quiet after the puts');
    const from = statuses().map((s) => s.loop.tickWakeups ?? 0);
    await sleep(500);
    settled = statuses().every((s, i) => (s.loop.tickWakeups ?? 0) - from[i]! <= 5);
  }
  const before = statuses();
  const windowMs = 2_000;
  const start = performance.now();
  await sleep(windowMs);
  const elapsed = performance.now() - start;
  const afterIdle = statuses();
  for (const [i, s] of afterIdle.entries()) {
    const wakeups = (s.loop.tickWakeups ?? 0) - (before[i]!.loop.tickWakeups ?? 0);
    const turns = s.loop.turns - before[i]!.loop.turns;
    // Retransmission every 250 ms, a probe every 2 s (and the answers to the others' probes): about
    // 10 in 2 s; one per tick would be 200.
    assert.ok(wakeups <= 30, `replica ${i}: ${wakeups} tick wake-ups in ${elapsed.toFixed(0)} ms idle (${turns} turns)`);
    assert.ok(turns <= 60, `replica ${i}: ${turns} turns in ${elapsed.toFixed(0)} ms idle`);
    process.stderr.write(`replica ${i}: ${wakeups} tick wake-ups, ${turns} turns in ${elapsed.toFixed(0)} ms idle\n`);
  }
  const view = afterIdle[0]!.view;
  await client.put('idle/after', 'x');
  const got = await client.get('idle/after');
  assert.equal(typeof got === 'string' ? got : new TextDecoder().decode(got ?? undefined), 'x');
  assert.ok(statuses().every((s) => s.view === view && s.lastExecuted >= afterIdle[0]!.lastExecuted + 1));
});
