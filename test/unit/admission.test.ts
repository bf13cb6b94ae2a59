/**
 * A replica that joins by itself (membership.ts): the handshake lets it in by the operator's
 * admission of its id, URL and key, and by nothing else; the core accepts its JOIN (signed with its
 * own key) only with that admission.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createNodeSigner, NodeVerifier, sha256 } from '../../src/crypto/node.ts';
import { randomSecretKey } from '../../src/crypto/noble.ts';
import { decodeHandshakeMessage, dialerAnswerHello, encodeHandshakeMessage, randomNonce, serverAcceptAuth, serverHello, type Admission, type ServerHandshakeContext } from '../../src/transport/handshake.ts';
import { admissionBytes, applyReconfig, encodeReconfigOp, genesisMembership, decodeReconfigOp } from '../../src/core/membership.ts';
import { Authenticator } from '../../src/core/auth.ts';
import { encodeBody } from '../../src/core/body.ts';
import { replicaPrincipal, type ClusterConfig } from '../../src/core/cluster.ts';

const verifier = new NodeVerifier();
const key = (): ReturnType<typeof createNodeSigner> => createNodeSigner(randomSecretKey());
const operator = key();
const replicas = [key(), key(), key(), key()];
const joiner = key();
const cluster: ClusterConfig = {
  clusterId: 'admission-test',
  f: 1,
  replicas: replicas.map((s, id) => ({ id, url: `ws://127.0.0.1:${7001 + id}`, publicKey: s.publicKey })),
  clients: [],
  operatorKey: operator.publicKey,
};
const self = { id: 4, url: 'ws://127.0.0.1:7005', publicKey: joiner.publicKey };
const admissionBy = (signer: typeof operator): Admission => ({ url: self.url, publicKey: self.publicKey, sig: signer.sign(admissionBytes(cluster.clusterId, self)) });

function handshake(admission: Admission | undefined, withAdmit = true): ReturnType<typeof serverAcceptAuth> {
  const server: ServerHandshakeContext = {
    clusterId: cluster.clusterId,
    selfId: 0,
    signer: replicas[0]!,
    verifier,
    publicKeyOf: (kind, id) => (kind === 'replica' ? cluster.replicas.find((r) => r.id === id)?.publicKey : undefined),
    ...(withAdmit
      ? { admit: (id: number, a: Admission) => (verifier.verify(operator.publicKey, admissionBytes(cluster.clusterId, { id, url: a.url, publicKey: a.publicKey }), a.sig) ? a.publicKey : undefined) }
      : {}),
  };
  const serverNonce = randomNonce();
  const hello = serverHello(server, serverNonce);
  const answered = dialerAnswerHello(
    { clusterId: cluster.clusterId, serverId: 0, serverPublicKey: replicas[0]!.publicKey, kind: 'replica', id: 4, signer: joiner, verifier, ...(admission ? { admission } : {}) },
    randomNonce(),
    hello,
  );
  assert.ok(answered.ok);
  return serverAcceptAuth(server, serverNonce, answered.value.auth);
}

test('the handshake lets a replica that is not in the keyring in by the operator admission only', () => {
  const ok = handshake(admissionBy(operator));
  assert.ok(ok.ok, ok.ok ? '' : ok.detail);
  assert.deepEqual(ok.value.principal, { kind: 'replica', id: 4 });
  const none = handshake(undefined);
  assert.equal(none.ok, false);
  assert.equal(none.ok ? '' : none.reason, 'unknown-principal');
  const forged = handshake(admissionBy(joiner));
  assert.equal(forged.ok ? '' : forged.reason, 'unknown-principal', 'an admission not signed by the operator');
  const noAdmit = handshake(admissionBy(operator), false);
  assert.equal(noAdmit.ok, false, 'a server that takes no admissions');
  // Someone else's admission: the AUTH is signed with another key than the admitted one.
  const stolen = { ...admissionBy(operator), publicKey: replicas[1]!.publicKey };
  assert.equal(handshake(stolen).ok, false);
});

test('an AUTH with an admission round-trips; a malformed admission is refused', () => {
  const auth = { type: 'auth' as const, clusterId: 'c', kind: 'replica' as const, id: 4, nonce: new Uint8Array(32).fill(1), sig: new Uint8Array(64).fill(2), admission: admissionBy(operator) };
  const d = decodeHandshakeMessage(encodeHandshakeMessage(auth));
  assert.ok(d.ok);
  assert.deepEqual(d.value, auth);
  const bad = encodeHandshakeMessage({ ...auth, admission: { ...auth.admission, publicKey: new Uint8Array(31) } });
  assert.equal(decodeHandshakeMessage(bad).ok, false);
});

test('a JOIN signed by the joining replica is verified with the admitted key; its execution checks the admission', () => {
  const auth = new Authenticator(cluster, { sign: (d) => replicas[0]!.sign(d), verify: (k, d, s) => verifier.verify(k, d, s), hash: sha256 });
  const request = (admission: Uint8Array, signer = joiner) => {
    const msg = { type: 'request' as const, client: replicaPrincipal(4), timestamp: 7, op: encodeReconfigOp({ kind: 'join', replica: self, admission }) };
    const body = encodeBody(msg);
    const tag = new TextEncoder().encode(`pbft/1/request/${cluster.clusterId}\0`);
    const data = new Uint8Array(tag.length + body.length);
    data.set(tag);
    data.set(body, tag.length);
    return { msg, body, sig: signer.sign(data) };
  };
  const good = admissionBy(operator).sig;
  assert.equal(auth.verify(request(good)), true);
  assert.equal(auth.verify(request(good, replicas[2]!)), false, 'signed by another key than the admitted one');
  assert.equal(auth.verify(request(admissionBy(joiner).sig)), false, 'an admission the operator did not sign');
  // Execution (deterministic, at every replica): the admission again, and who signed.
  const check = (op: Uint8Array, replica: typeof self, sig: Uint8Array): boolean => verifier.verify(op, admissionBytes(cluster.clusterId, replica), sig);
  const m = genesisMembership(cluster);
  const joined = applyReconfig(m, request(good).msg.op, 10, 8, 16, replicaPrincipal(4), check);
  assert.ok(joined.result.ok);
  assert.deepEqual(joined.membership.next?.replicas.map((r) => r.id), [0, 1, 2, 3, 4]);
  const other = applyReconfig(m, request(good).msg.op, 10, 8, 16, replicaPrincipal(3), check);
  assert.match(other.result.ok ? '' : other.result.reason, /replica 3 may only join or quit itself/);
  const byOperator = applyReconfig(m, request(good).msg.op, 10, 8, 16, undefined, check);
  assert.match(byOperator.result.ok ? '' : byOperator.result.reason, /join is signed by the replica itself/);
  const forged = decodeReconfigOp(request(admissionBy(joiner).sig).msg.op);
  assert.ok(forged.ok);
  const refused = applyReconfig(m, request(admissionBy(joiner).sig).msg.op, 10, 8, 16, replicaPrincipal(4), check);
  assert.match(refused.result.ok ? '' : refused.result.reason, /not signed by the operator/);
});
