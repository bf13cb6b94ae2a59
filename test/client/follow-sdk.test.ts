/**
 * PbftClient follows the membership on its own, against a scripted cluster behind a fake
 * transport (PbftClientOptions.createTransport): replicas sign replies and epoch proofs with real
 * ed25519 (epoch-proofs.ts), and answer `epochsreq` with the proofs after the asker's epoch.
 *
 *   - a long-lived client keeps working while replicas JOIN and QUIT until only one of the keyring's
 *     replicas is left: its request is accepted on replies of the new members;
 *   - a client started from the old cluster.json connects through the one original replica left;
 *   - a replica that answers with a tampered proof is reported and ignored, the others are followed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { concatBytes, domainTag } from '../../src/core/auth.ts';
import { decodeFrame, encodeLinkFrame, encodeSignedFrame, encodeBody } from '../../src/codec/messages.ts';
import type { ReplicaInfo } from '../../src/core/cluster.ts';
import type { MemberConfig } from '../../src/core/membership.ts';
import type { EpochProof, ReplyMsg } from '../../src/core/messages.ts';
import { PbftClient, type InvalidEpochProof, type MembershipChange } from '../../src/client/client.ts';
import type { ClientTransport, ClientTransportOptions } from '../../src/transport/client-transport.ts';
import { TestKeyring } from './epoch-proofs.ts';
import { createLogger } from '../../src/util/log.ts';

class World {
  readonly k = new TestKeyring('follow-sdk');
  readonly chain: EpochProof[] = [];
  readonly configs: MemberConfig[] = [this.k.genesis];
  readonly alive = new Set([0, 1, 2, 3]);
  /** Replicas that answer epochsreq with a tampered proof. */
  readonly liars = new Set<number>();
  /** Who replied to each request (client:timestamp). */
  readonly repliedBy = new Map<string, number[]>();
  readonly transports: FakeTransport[] = [];
  /** Answers to epochsreq reach the client this much later (ms; in order). */
  epochsDelayMs = 0;

  get current(): MemberConfig {
    return this.configs[this.configs.length - 1]!;
  }

  /** The next configuration has these members (signed by a quorum of the current one). */
  reconfigure(ids: number[]): void {
    for (const id of ids) this.alive.add(id);
    const { proof, config } = this.k.proof(this.current, ids.map((id) => this.k.replica(id)));
    this.chain.push(proof);
    this.configs.push(config);
  }

  /** Replica `id` is shut down: it answers nothing, its connections close. */
  stop(id: number): void {
    this.alive.delete(id);
    for (const t of this.transports) t.drop(id);
  }

  receive(t: FakeTransport, id: number, bytes: Uint8Array): void {
    if (!this.alive.has(id)) return;
    const d = decodeFrame(bytes);
    if (!d.ok) return;
    const frame = d.value;
    if (frame.kind === 'link' && frame.msg.type === 'epochsreq') {
      const proofs = this.chain.slice(frame.msg.epoch, frame.msg.epoch + 16);
      if (this.liars.has(id)) {
        // The real chain, then a "next" configuration that the current members never signed.
        const { proof } = this.k.proof(this.current, [...this.current.replicas, this.k.replica(9)]);
        proofs.push({ ...proof, cert: { ...proof.cert, proof: proof.cert.proof.map((c) => ({ ...c, sig: new Uint8Array(64).fill(1) })) } });
      }
      t.deliver(id, encodeLinkFrame({ type: 'epochs', proofs }), this.epochsDelayMs);
      return;
    }
    if (frame.kind !== 'signed' || frame.signed.msg.type !== 'request') return;
    if (!this.current.replicas.some((r) => r.id === id)) return;
    // Ordered and executed by every running member, each of which replies (as replicas do).
    const req = frame.signed.msg;
    const key = `${req.client}:${req.timestamp}`;
    for (const m of this.current.replicas) {
      if (!this.alive.has(m.id)) continue;
      const msg: ReplyMsg = { type: 'reply', view: 0, client: req.client, timestamp: req.timestamp, replica: m.id, result: concatBytes(Uint8Array.of(7), req.op) };
      const body = encodeBody(msg);
      const sig = this.k.replicaSigners.get(m.id)!.sign(concatBytes(domainTag(this.k.cluster.clusterId, 'reply'), body));
      if (!this.repliedBy.get(key)?.includes(m.id)) this.repliedBy.set(key, [...(this.repliedBy.get(key) ?? []), m.id]);
      t.deliver(m.id, encodeSignedFrame({ msg, body, sig }));
    }
  }
}

/** A transport whose connections open at once to the replicas of the world that are running. */
class FakeTransport implements ClientTransport {
  private readonly links = new Map<number, ReplicaInfo>();
  private readonly connected = new Set<number>();
  private frameHandler: ((id: number, frame: Uint8Array) => void) | undefined;
  private connectedHandler: ((id: number) => void) | undefined;
  readonly setCalls: number[][] = [];
  private closed = false;

  constructor(
    private readonly world: World,
    options: ClientTransportOptions,
  ) {
    world.transports.push(this);
    for (const r of options.cluster.replicas) this.links.set(r.id, r);
    setImmediate(() => this.dialAll());
  }

  private dialAll(): void {
    for (const id of this.links.keys()) {
      if (this.closed || this.connected.has(id) || !this.world.alive.has(id)) continue;
      this.connected.add(id);
      this.connectedHandler?.(id);
    }
  }

  drop(id: number): void {
    this.connected.delete(id);
  }

  /** Replicas whose frames reached the client. */
  readonly received: number[] = [];

  deliver(id: number, frame: Uint8Array, delayMs = 0): void {
    const arrive = (): void => {
      if (!this.connected.has(id)) return;
      this.received.push(id);
      this.frameHandler?.(id, frame);
    };
    if (delayMs > 0) setTimeout(arrive, delayMs);
    else setImmediate(arrive);
  }

  send(id: number, frame: Uint8Array): boolean {
    if (!this.connected.has(id)) return false;
    setImmediate(() => this.world.receive(this, id, frame));
    return true;
  }

  broadcast(frame: Uint8Array): number {
    let n = 0;
    for (const id of this.connected) if (this.send(id, frame)) n++;
    return n;
  }

  onFrame(handler: (id: number, frame: Uint8Array) => void): void {
    this.frameHandler = handler;
  }

  onConnected(handler: (id: number) => void): void {
    this.connectedHandler = handler;
  }

  connectedReplicas(): number[] {
    return [...this.connected].sort((a, b) => a - b);
  }

  setReplicas(replicas: readonly ReplicaInfo[]): void {
    this.setCalls.push(replicas.map((r) => r.id));
    const ids = new Set(replicas.map((r) => r.id));
    for (const id of [...this.links.keys()]) {
      if (ids.has(id)) continue;
      this.links.delete(id);
      this.connected.delete(id);
    }
    for (const r of replicas) this.links.set(r.id, r);
    setImmediate(() => this.dialAll());
  }

  waitConnected(count: number, timeoutMs: number): Promise<void> {
    if (this.connected.size >= count) return Promise.resolve();
    return new Promise((_, reject) => setTimeout(() => reject(new Error(`connected to ${[...this.connected]}, needed ${count}`)), timeoutMs));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.connected.clear();
  }
}

async function until(cond: () => boolean, ms = 3_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 5));
  }
}

function connect(world: World, transports: FakeTransport[] = [], options: { membershipRefreshMs?: number } = {}): Promise<PbftClient> {
  return PbftClient.connect({
    ...options,
    ...(process.env.DBG ? { log: createLogger({ level: 'debug', format: 'text' }) } : {}),
    cluster: world.k.cluster,
    key: { id: 0, secretKey: world.k.clientSecrets.get(0)! },
    crypto: 'node',
    timeoutMs: 5_000,
    retransmitMs: 30,
    createTransport: (o) => {
      const t = new FakeTransport(world, o);
      transports.push(t);
      return t;
    },
  });
}

const op = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Epoch 1 adds replica 4, epoch 2 removes replica 3, which then stops: members 0, 1, 2, 4. */
function addFourThenRemoveThree(world: World): void {
  world.reconfigure([0, 1, 2, 3, 4]);
  world.reconfigure([0, 1, 2, 4]);
  world.stop(3);
}

test('a long-lived client follows JOINs and QUITs until only one keyring replica is left, and its requests still complete', async () => {
  const world = new World();
  const transports: FakeTransport[] = [];
  const client = await connect(world, transports);
  const changes: MembershipChange[] = [];
  client.on('membership', (c) => changes.push(c));
  try {
    assert.equal(client.epoch, 0);
    assert.deepEqual(client.members, [0, 1, 2, 3]);
    assert.deepEqual(await client.invoke(op('a')), concatBytes(Uint8Array.of(7), op('a')));

    // +4, -1, +5, -0, +6, -3: members [2, 4, 5, 6]; the replicas that left shut down.
    world.reconfigure([0, 1, 2, 3, 4]);
    world.reconfigure([0, 2, 3, 4]);
    world.stop(1);
    world.reconfigure([0, 2, 3, 4, 5]);
    world.reconfigure([2, 3, 4, 5]);
    world.stop(0);
    world.reconfigure([2, 3, 4, 5, 6]);
    world.reconfigure([2, 4, 5, 6]);
    world.stop(3);

    // Of the keyring's replicas only 2 answers: f+1 = 2 replies need the new members. The call's
    // timeout (5 s) is shorter than the periodic membership refresh (30 s): the client learns the
    // new members from the replies to this request (asserted below: one answer carried the chain).
    const result = await client.invoke(op('b'));
    assert.deepEqual(result, concatBytes(Uint8Array.of(7), op('b')));
    assert.equal(client.epoch, 6);
    assert.deepEqual(client.members, [2, 4, 5, 6]);
    assert.equal(client.primary, 2, 'view 0: the lowest member id');
    assert.deepEqual(transports[0]!.setCalls.at(-1), [2, 4, 5, 6]);
    assert.deepEqual(client.connectedReplicas(), [2, 4, 5, 6]);
    assert.equal(changes.length, 1, 'one answer carried the whole chain');
    assert.deepEqual(changes[0], { epoch: 6, previousEpoch: 0, replicas: [2, 4, 5, 6], added: [4, 5, 6], removed: [0, 1, 3], clientRegistered: true });
    // Replies reach the client only on its connections: it accepted once connected to new members.
    assert.ok(transports[0]!.received.some((id) => id >= 4), `received from ${transports[0]!.received}`);

    // Later requests go to the new primary at once and complete without retransmission.
    for (let i = 0; i < 5; i++) await client.invoke(op(`c${i}`));
    assert.equal(client.invalidEpochProofs, 0);
  } finally {
    await client.close();
  }
});

test('a client started from the old cluster.json connects through the one original replica left', async () => {
  const world = new World();
  world.reconfigure([0, 1, 2, 3, 4]);
  world.reconfigure([0, 1, 2, 3, 4, 5, 6]);
  world.reconfigure([0, 3, 4, 5, 6]);
  world.reconfigure([3, 4, 5, 6]);
  for (const id of [0, 1, 2]) world.stop(id);
  const client = await connect(world);
  try {
    assert.equal(client.epoch, 4);
    assert.deepEqual(client.members, [3, 4, 5, 6]);
    assert.deepEqual(await client.invoke(op('x')), concatBytes(Uint8Array.of(7), op('x')));
  } finally {
    await client.close();
  }
});

test('two asks for epoch proofs out to a replica at once: the answer to the second, which carries the change, is not dropped as unasked', async () => {
  const world = new World();
  // Answers take 100 ms: the one to the ask at connect (nothing new then) is still on its way when
  // the request asks again (membershipRefreshMs 1: on every request), and that answer has epochs 1 and 2.
  world.epochsDelayMs = 100;
  const client = await connect(world, [], { membershipRefreshMs: 1 });
  const changes: number[] = [];
  client.on('membership', (c) => changes.push(c.epoch));
  try {
    addFourThenRemoveThree(world);
    await client.invoke(op('y'));
    await until(() => client.epoch === 2);
    assert.deepEqual(changes, [2]);
    assert.deepEqual(client.members, [0, 1, 2, 4]);
  } finally {
    await client.close();
  }
});

test('a replica answering with a forged proof is reported and ignored; the client follows the others', async () => {
  const world = new World();
  world.liars.add(1);
  // Ask on every request (no other sign of a change here: replicas 0, 1, 2 stay members).
  const client = await connect(world, [], { membershipRefreshMs: 1 });
  const invalid: InvalidEpochProof[] = [];
  const changes: number[] = [];
  client.on('invalid-epoch-proof', (e) => invalid.push(e));
  client.on('membership', (c) => changes.push(c.epoch));
  try {
    addFourThenRemoveThree(world);
    await client.invoke(op('y'));
    await until(() => client.epoch === 2 && invalid.length > 0);
    // Asked at connect (a forged epoch 1) and on the request (the real 1 and 2, then a forged 3).
    assert.ok(invalid.every((e) => e.replica === 1), JSON.stringify(invalid));
    assert.ok(invalid.some((e) => /epoch proof 3: bad signature/.test(e.reason)), JSON.stringify(invalid));
    assert.ok(client.invalidEpochProofs >= 2, `${client.invalidEpochProofs}`);
    assert.deepEqual(client.members, [0, 1, 2, 4]);
    assert.deepEqual(changes, [2]);
    // Still working, with the liar connected (its replies are honest; only its proofs were forged).
    await client.invoke(op('z'));
    assert.deepEqual(client.connectedReplicas(), [0, 1, 2, 4]);
  } finally {
    await client.close();
  }
});
