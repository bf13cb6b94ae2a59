/**
 * The SDK follows a real reconfiguration: five in-process ReplicaNodes (real transport on
 * 127.0.0.1, real ed25519), four in the keyring and one spare that JOINs; the operator (a PbftClient
 * signing as OPERATOR_CLIENT) adds replica 4 and removes replica 0. A client connected before the
 * changes learns both configurations from epoch proofs, connects to the joined replica, drops the
 * removed one, and keeps completing requests after the removed replica and another keyring replica
 * are stopped. Checkpoints every 8 sequence numbers so that the switches come quickly.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClusterConfig } from '../../src/core/cluster.ts';
import { OPERATOR_CLIENT, decodeReconfigResult, encodeReconfigOp, type ReconfigOp } from '../../src/core/membership.ts';
import { PbftClient, type MembershipChange } from '../../src/client/client.ts';
import { createNodeSigner } from '../../src/crypto/node.ts';
import { randomSecretKey } from '../../src/crypto/noble.ts';
import { ReplicaNode } from '../../src/node/replica-node.ts';
import { MemoryStorage } from '../../src/storage/memory.ts';
import { freePorts } from '../../src/transport/free-ports.ts';
import { silentLogger } from '../../src/util/log.ts';

const nodes = new Map<number, ReplicaNode>();
const clients: PbftClient[] = [];
let cluster: ClusterConfig;
let spare: { id: number; url: string; publicKey: Uint8Array };
let operatorSecret: Uint8Array;
let clientSecret: Uint8Array;

before(async () => {
  const ports = await freePorts(5);
  const secrets = ports.map(() => randomSecretKey());
  const url = (id: number): string => `ws://127.0.0.1:${ports[id]}`;
  operatorSecret = randomSecretKey();
  clientSecret = randomSecretKey();
  cluster = {
    clusterId: `follow-live-${ports[0]}`,
    f: 1,
    replicas: [0, 1, 2, 3].map((id) => ({ id, url: url(id), publicKey: createNodeSigner(secrets[id]!).publicKey })),
    clients: [{ id: 0, publicKey: createNodeSigner(clientSecret).publicKey }],
    operatorKey: createNodeSigner(operatorSecret).publicKey,
  };
  spare = { id: 4, url: url(4), publicKey: createNodeSigner(secrets[4]!).publicKey };
  for (let id = 0; id < 5; id++) {
    const node = new ReplicaNode(
      {
        cluster,
        id,
        secretKey: secrets[id]!,
        dataDir: `(memory ${id})`,
        log: silentLogger,
        replica: { checkpointInterval: 8, windowSize: 16, viewChangeTimeoutTicks: 50 },
        listenHost: '127.0.0.1',
        listenPort: ports[id]!,
      },
      { storage: new MemoryStorage(), onFatal: (err) => assert.fail(`replica ${id}: ${String(err)}`) },
    );
    nodes.set(id, node);
  }
  await Promise.all([...nodes.values()].map((n) => n.start()));
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all([...nodes.values()].map((n) => n.stop().catch(() => undefined)));
});

async function connect(id: number, secretKey: Uint8Array): Promise<PbftClient> {
  const c = await PbftClient.connect({ cluster, key: { id, secretKey }, timeoutMs: 20_000, retransmitMs: 100, membershipRefreshMs: 100 });
  clients.push(c);
  return c;
}

async function reconfigure(operator: PbftClient, op: ReconfigOp): Promise<number> {
  const r = decodeReconfigResult(await operator.invoke(encodeReconfigOp(op)));
  assert.ok(r.ok && r.value.ok, JSON.stringify(r));
  return r.ok && r.value.ok ? r.value.epoch : -1;
}

/** Requests until the client holds `epoch` (it asks at most every membershipRefreshMs when a request starts). */
async function until(client: PbftClient, epoch: number, tag: string): Promise<void> {
  const end = Date.now() + 20_000;
  for (let i = 0; client.epoch < epoch; i++) {
    assert.ok(Date.now() < end, `client at epoch ${client.epoch}, expected ${epoch}`);
    await client.put(`${tag}${i % 4}`, String(i));
    await new Promise((r) => setTimeout(r, 30));
  }
}

test('a client connected before a JOIN and a QUIT follows both and keeps working without the removed replica', async () => {
  const client = await connect(0, clientSecret);
  const operator = await connect(OPERATOR_CLIENT, operatorSecret);
  const changes: MembershipChange[] = [];
  client.on('membership', (c) => changes.push(c));
  await client.put('a', '1');
  assert.equal(client.epoch, 0);

  assert.equal(await reconfigure(operator, { kind: 'add-replica', replica: spare }), 1);
  await until(client, 1, 'j');
  assert.deepEqual(client.members, [0, 1, 2, 3, 4]);
  assert.equal(client.configuration.replicas.find((r) => r.id === 4)?.url, spare.url);
  // The client dials the joined replica.
  for (let i = 0; i < 200 && !client.connectedReplicas().includes(4); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(client.connectedReplicas().includes(4), `connected to ${client.connectedReplicas()}`);

  assert.equal(await reconfigure(operator, { kind: 'remove-replica', id: 0 }), 2);
  await until(client, 2, 'q');
  assert.deepEqual(client.members, [1, 2, 3, 4]);
  assert.ok(!client.connectedReplicas().includes(0), `still connected to 0: ${client.connectedReplicas()}`);
  assert.deepEqual(
    changes.map((c) => [c.epoch, c.added, c.removed]),
    [
      [1, [4], []],
      [2, [], [0]],
    ],
  );

  // The removed replica and one more of the keyring's stop: members 2, 3, 4 answer (f = 1).
  await nodes.get(0)!.stop();
  await nodes.get(1)!.stop();
  for (let i = 0; i < 5; i++) await client.put(`after${i}`, String(i));
  assert.equal(await client.get('after4'), '4');
  assert.equal(await client.get('a'), '1');
  assert.equal(client.invalidEpochProofs, 0);
});
