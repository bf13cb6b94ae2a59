/**
 * The SDK catches a replica that signs two different results for one request (src/core/evidence.ts):
 * 'equivocation' event, `evidence()`, and `evidenceFile()`, which verifies offline with the keyring
 * (and the epoch proofs it carries, after a reconfiguration). Scripted replicas behind a fake
 * transport, real ed25519. A reply re-sent with the same result in a later view, or a second reply
 * with a bad signature, is no evidence.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { concatBytes, domainTag } from '../../src/core/auth.ts';
import { decodeFrame, encodeBatchedReplyFrame, encodeBody, encodeLinkFrame, encodeSignedFrame } from '../../src/codec/messages.ts';
import type { ReplicaInfo } from '../../src/core/cluster.ts';
import { verifyEvidenceFile, type ReplyEvidence } from '../../src/core/evidence.ts';
import type { MemberConfig } from '../../src/core/membership.ts';
import type { EpochProof, ReplyBatchMsg, ReplyMsg } from '../../src/core/messages.ts';
import { buildReplyTree, replyLeaf } from '../../src/core/replytree.ts';
import { NodeVerifier, sha256 } from '../../src/crypto/node.ts';
import { PbftClient } from '../../src/client/client.ts';
import type { ClientTransport, ClientTransportOptions } from '../../src/transport/client-transport.ts';
import { TestKeyring } from './epoch-proofs.ts';

/** How replica `id` answers a request: the replies it sends, in order. */
type Script = (id: number, reply: (result: string, how?: { view?: number; batched?: boolean; badSig?: boolean }) => void) => void;

class World {
  readonly k = new TestKeyring('evidence-sdk');
  readonly chain: EpochProof[] = [];
  configs: MemberConfig[] = [this.k.genesis];
  script: Script = (_id, reply) => reply('ok');

  get current(): MemberConfig {
    return this.configs[this.configs.length - 1]!;
  }

  reconfigure(replicas: ReplicaInfo[]): void {
    const { proof, config } = this.k.proof(this.current, replicas);
    this.chain.push(proof);
    this.configs.push(config);
  }

  private sign(id: number, type: 'reply' | 'replybatch', body: Uint8Array): Uint8Array {
    return this.k.replicaSigners.get(id)!.sign(concatBytes(domainTag(this.k.cluster.clusterId, type), body));
  }

  receive(t: FakeTransport, id: number, bytes: Uint8Array): void {
    const d = decodeFrame(bytes);
    if (!d.ok) return;
    const frame = d.value;
    if (frame.kind === 'link' && frame.msg.type === 'epochsreq') {
      t.deliver(id, encodeLinkFrame({ type: 'epochs', proofs: this.chain.slice(frame.msg.epoch, frame.msg.epoch + 16) }));
      return;
    }
    if (frame.kind !== 'signed' || frame.signed.msg.type !== 'request' || id !== this.current.replicas[0]!.id) return;
    const req = frame.signed.msg;
    for (const m of this.current.replicas) {
      this.script(m.id, (text, how = {}) => {
        const result = new TextEncoder().encode(text);
        const msg: ReplyMsg = { type: 'reply', view: how.view ?? 0, client: req.client, timestamp: req.timestamp, replica: m.id, result };
        if (how.batched) {
          const leaves = [replyLeaf(sha256, 99, 1, Uint8Array.of(1)), replyLeaf(sha256, req.client, req.timestamp, result)];
          const tree = buildReplyTree(sha256, leaves);
          const batch: ReplyBatchMsg = { type: 'replybatch', view: msg.view, replica: m.id, seq: 5, count: 2, root: tree.root };
          const body = encodeBody(batch);
          t.deliver(m.id, encodeBatchedReplyFrame({ msg, batch: { msg: batch, body, sig: this.sign(m.id, 'replybatch', body) }, index: 1, path: tree.paths[1]! }));
          return;
        }
        const body = encodeBody(msg);
        const sig = how.badSig ? new Uint8Array(64).fill(3) : this.sign(m.id, 'reply', body);
        t.deliver(m.id, encodeSignedFrame({ msg, body, sig }));
      });
    }
  }
}

class FakeTransport implements ClientTransport {
  private readonly ids = new Set<number>();
  private readonly connected = new Set<number>();
  private frameHandler?: (id: number, frame: Uint8Array) => void;
  private connectedHandler?: (id: number) => void;

  constructor(
    private readonly world: World,
    options: ClientTransportOptions,
  ) {
    for (const r of options.cluster.replicas) this.ids.add(r.id);
    setImmediate(() => this.dialAll());
  }

  private dialAll(): void {
    for (const id of this.ids) {
      if (this.connected.has(id)) continue;
      this.connected.add(id);
      this.connectedHandler?.(id);
    }
  }

  /** In order, one macrotask after the other (a second reply arrives after the first was judged). */
  deliver(id: number, frame: Uint8Array): void {
    setImmediate(() => this.connected.has(id) && this.frameHandler?.(id, frame));
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
    this.ids.clear();
    for (const r of replicas) this.ids.add(r.id);
    for (const id of [...this.connected]) if (!this.ids.has(id)) this.connected.delete(id);
    setImmediate(() => this.dialAll());
  }

  async waitConnected(): Promise<void> {}

  async close(): Promise<void> {
    this.connected.clear();
  }
}

function connect(world: World): Promise<PbftClient> {
  return PbftClient.connect({
    cluster: world.k.cluster,
    key: { id: 0, secretKey: world.k.clientSecrets.get(0)! },
    crypto: 'node',
    timeoutMs: 5_000,
    retransmitMs: 1_000,
    createTransport: (o) => new FakeTransport(world, o),
  });
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

const verifier = new NodeVerifier();
const crypto = { verify: (k: Uint8Array, d: Uint8Array, s: Uint8Array) => verifier.verify(k, d, s), hash: sha256 };

test('a replica that signs two different results for one request is caught, and the evidence file verifies offline', async () => {
  const world = new World();
  // Replica 3: a wrong result, then another (as a leaf of a signed REPLY-BATCH), after the others.
  world.script = (id, reply) => {
    if (id !== 3) return reply('ok');
    reply('wrong-1');
    reply('wrong-2', { batched: true });
  };
  const client = await connect(world);
  const seen: ReplyEvidence[] = [];
  client.on('equivocation', (e) => seen.push(e));
  const result = await client.invoke(Uint8Array.of(1));
  assert.equal(new TextDecoder().decode(result), 'ok');
  await settle();
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.signer, 3);
  assert.equal(seen[0]!.kind, 'reply');
  assert.equal(client.evidence().length, 1);
  const file = JSON.parse(JSON.stringify(client.evidenceFile()));
  assert.equal(file.evidence[0].reportedBy, 'client 0');
  const v = verifyEvidenceFile(file, world.k.cluster, crypto);
  assert.ok(v.ok && v.verdicts[0]!.ok, JSON.stringify(v));
  assert.match(v.ok && v.verdicts[0]!.ok ? v.verdicts[0]!.verdict : '', /replica 3 signed two different results for the request of client 0/);
  await client.close();
});

test('the same result re-sent in a later view, or a second reply with a bad signature, is no evidence', async () => {
  const world = new World();
  world.script = (id, reply) => {
    reply('ok');
    if (id === 2) reply('ok', { view: 4 });
    if (id === 3) reply('forged', { badSig: true });
  };
  const client = await connect(world);
  const seen: ReplyEvidence[] = [];
  client.on('equivocation', (e) => seen.push(e));
  await client.invoke(Uint8Array.of(2));
  await settle();
  assert.deepEqual(seen, []);
  assert.deepEqual(client.evidence(), []);
  await client.close();
});

test('after a reconfiguration: the evidence names its epoch and carries the proofs that give a third party the new keys', async () => {
  const world = new World();
  // Epoch 1: replica 3 leaves, replica 4 (a new key) joins.
  world.reconfigure([0, 1, 2, 4].map((id) => world.k.replica(id)));
  world.script = (id, reply) => {
    if (id !== 4) return reply('ok');
    reply('wrong-a');
    reply('wrong-b');
  };
  const client = await connect(world);
  await new Promise<void>((resolve) => {
    const check = (): void => (client.epoch === 1 ? resolve() : void setTimeout(check, 5));
    check();
  });
  await client.invoke(Uint8Array.of(3));
  await settle();
  const [e] = client.evidence();
  assert.ok(e !== undefined);
  assert.equal(e.signer, 4);
  assert.equal(e.epoch, 1);
  const file = JSON.parse(JSON.stringify(client.evidenceFile()));
  assert.equal(file.epochProofs.length, 1);
  const v = verifyEvidenceFile(file, world.k.cluster, crypto);
  assert.ok(v.ok && v.verdicts[0]!.ok, JSON.stringify(v));
  // Without the proof, replica 4's key is unknown to cluster.json.
  const bare = verifyEvidenceFile({ ...file, epochProofs: [] }, world.k.cluster, crypto);
  assert.ok(bare.ok && !bare.verdicts[0]!.ok);
  await client.close();
});
