/**
 * Simulated clients follow the membership on their own (src/sim/client.ts with the SDK's
 * MembershipFollower, ReplyCollector and RequestSigner): replicas 4, 5, 6 JOIN and replica 3 QUITs
 * while the clients run; then the removed replica stops and two more of the keyring's replicas
 * crash, so that of the keyring's four only replica 2 still answers. The clients must finish on the
 * replies of the joined replicas, with every accepted result checked against the sequential model.
 * A negative control runs the same script with clients that keep the keyring's configuration: they
 * stall, so the scenario does need the following.
 *
 * Both reply modes of the client (src/client/repliers.ts): with every replica replying ('all') a
 * joined replica's reply, from an id the client does not know, makes it ask at once, so the clients
 * follow each epoch as it comes; with f+1 named repliers ('quorum', the default) a joined replica is
 * never named by a client that does not know it, so the clients learn of the changes at a
 * retransmission (a named replica left or crashed) or at their periodic refresh, and still finish.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimCluster } from '../../src/sim/cluster.ts';
import type { RepliesMode } from '../../src/client/repliers.ts';

function entered(sim: SimCluster, epoch: number, members: number[]): boolean {
  return members.every((id) => {
    const r = sim.hosts[id]!.replica;
    return !r || (r.status().epoch >= epoch && r.lastExecuted >= r.h);
  });
}

/** JOIN 4, 5, 6 and QUIT 3; then 3 stops and 0, 1 crash. Returns the tick of the crashes and the accepted count then. */
function script(sim: SimCluster, seed: number, follow: boolean, promptly = follow): { crashTick: number; acceptedBefore: number[] } {
  const reconfigure = (op: Parameters<SimCluster['reconfigure']>[0], epoch: number, members: number[]): void => {
    sim.reconfigure(op);
    assert.ok(sim.runUntil(() => entered(sim, epoch, members), 4_000), `seed ${seed}: epoch ${epoch} not entered by ${members.join(',')}`);
    if (!promptly) return;
    // The clients follow: a joined replica's reply (an unknown id) or a retransmission makes them ask.
    assert.ok(
      sim.runUntil(() => sim.clients.every((c) => c.follower.epoch >= epoch || c.done), 3_000),
      `seed ${seed}: clients at epochs ${sim.clients.map((c) => c.follower.epoch)} after epoch ${epoch}`,
    );
  };
  sim.run(100);
  reconfigure({ kind: 'add-replica', replica: sim.replicaInfo[4]! }, 1, [0, 1, 2, 3, 4]);
  reconfigure({ kind: 'add-replica', replica: sim.replicaInfo[5]! }, 2, [0, 1, 2, 3, 4, 5]);
  reconfigure({ kind: 'add-replica', replica: sim.replicaInfo[6]! }, 3, [0, 1, 2, 3, 4, 5, 6]);
  // The QUIT: nothing new answers the clients, so they learn it when a request is retransmitted.
  sim.reconfigure({ kind: 'remove-replica', id: 3 });
  assert.ok(sim.runUntil(() => entered(sim, 4, [0, 1, 2, 4, 5, 6]), 4_000), `seed ${seed}: epoch 4 not entered`);
  // The removed replica is stopped, and two more of the keyring's replicas crash: of 0..3 only 2 is
  // left, fewer than f+1 = 2 of the keyring's configuration. Six members, four running: a quorum.
  const acceptedBefore = sim.clients.map((c) => c.completed.length);
  const crashTick = sim.now;
  sim.crash(3);
  sim.crash(0);
  sim.crash(1);
  return { crashTick, acceptedBefore };
}

for (const [seed, replies] of [1, 2, 3].flatMap((seed) => (['all', 'quorum'] as RepliesMode[]).map((r) => [seed, r] as const))) {
  test(`seed ${seed}, replies ${replies}: clients follow JOIN x3 and QUIT, and finish when only one of the keyring's replicas is left`, () => {
    const sim = new SimCluster({ seed, f: 1, spareReplicas: 3, operator: true, clients: 4, requestsPerClient: 300, keySpace: 6, clientReplies: replies });
    sim.keepEvents = false;
    const { acceptedBefore } = script(sim, seed, true, replies === 'all');
    assert.ok(
      sim.runUntil(() => sim.allClientsDone(), 30_000),
      `seed ${seed}: clients did not finish: ${sim.clients.map((c) => `${c.completed.length} done, epoch ${c.follower.epoch}`).join('; ')}`,
    );
    const { modelled } = sim.finish();
    assert.deepEqual(sim.checker.violations, [], `seed ${seed}: ${JSON.stringify(sim.checker.violations.slice(0, 3))}`);
    assert.ok(modelled >= 1_200, `seed ${seed}: only ${modelled} requests modelled`);
    for (const c of sim.clients) {
      assert.equal(c.follower.epoch, 4, `client ${c.id} epoch`);
      assert.deepEqual(c.follower.members, [0, 1, 2, 4, 5, 6]);
      assert.equal(c.invalidEpochProofs, 0);
      assert.deepEqual(
        c.epochsEntered.map((e) => e.epoch).filter((e, i, all) => all.indexOf(e) === i),
        c.epochsEntered.map((e) => e.epoch),
        'each epoch entered once',
      );
      // After the crashes every result was accepted on f+1 = 2 matching replies of running members:
      // at most one of them (replica 2) from the keyring's replicas.
      const after = c.acceptedFrom.slice(acceptedBefore[c.id]!);
      assert.ok(after.length > 0, `client ${c.id} accepted nothing after the crashes`);
      for (const group of after) {
        assert.ok(group.every((id) => [2, 4, 5, 6].includes(id)), `client ${c.id}: accepted on replies of ${group}`);
        assert.ok(group.some((id) => id >= 4), `client ${c.id}: accepted on replies of ${group}`);
      }
    }
  });
}

test('negative control: clients that keep the keyring configuration stall once only one of its replicas is left', () => {
  const seed = 1;
  const sim = new SimCluster({ seed, f: 1, spareReplicas: 3, operator: true, clients: 4, requestsPerClient: 300, keySpace: 6, clientsFollowMembership: false });
  sim.keepEvents = false;
  const { acceptedBefore } = script(sim, seed, false);
  sim.runUntil(() => sim.allClientsDone(), 5_000);
  assert.equal(sim.allClientsDone(), false);
  for (const c of sim.clients) {
    assert.equal(c.follower.epoch, 0);
    // Nothing accepted after the crashes: of the keyring's replicas only 2 answers, and f+1 = 2.
    assert.ok(c.completed.length <= acceptedBefore[c.id]! + 1, `client ${c.id} accepted ${c.completed.length - acceptedBefore[c.id]!} after the crashes`);
  }
  sim.finish();
  assert.deepEqual(sim.checker.violations, []);
});
