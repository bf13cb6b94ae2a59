/**
 * The wire format: round trips of every message type, signatures over raw bytes with a domain tag,
 * cross-backend signatures, and decoding of hostile bytes (never an exception, always a reason).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeCbor } from '../../src/codec/cbor.ts';
import { decodeBody, decodeFrame, encodeBody, encodeLinkFrame, encodeSignedFrame } from '../../src/codec/messages.ts';
import { Authenticator, concatBytes, domainTag } from '../../src/core/auth.ts';
import type { ClusterConfig } from '../../src/core/cluster.ts';
import type { CommitMsg, LinkMessage, PrePrepareMsg, RequestMsg, Signed, SignedMessage } from '../../src/core/messages.ts';
import { createNodeSigner, NodeVerifier, sha256 } from '../../src/crypto/node.ts';
import { createNobleSigner, NobleVerifier, randomSecretKey } from '../../src/crypto/noble.ts';
import { Prng } from '../../src/sim/prng.ts';

const secrets = Array.from({ length: 5 }, () => randomSecretKey());
const replicaSigners = secrets.slice(0, 4).map((s) => createNodeSigner(s));
const clientSigner = createNodeSigner(secrets[4]!);
const cluster: ClusterConfig = {
  clusterId: 'codec-test',
  f: 1,
  replicas: replicaSigners.map((s, id) => ({ id, url: `ws://127.0.0.1:${7001 + id}`, publicKey: s.publicKey })),
  clients: [{ id: 0, publicKey: clientSigner.publicKey }],
};
const verifier = new NodeVerifier();
const authAs = (id: number) =>
  new Authenticator(cluster, { sign: (d) => replicaSigners[id]!.sign(d), verify: (k, d, s) => verifier.verify(k, d, s), hash: sha256 });
const freshAuth = () => authAs(0);

const digest = (n: number) => new Uint8Array(32).fill(n);
/** Plain Uint8Array copies everywhere (cbor-x's encoder returns Buffers; equality is about bytes). */
const plain = (v: unknown): unknown =>
  JSON.parse(JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && (x.type === 'Buffer' || x instanceof Uint8Array) ? { bytes: Array.from(x.data ?? x) } : x)));

function request(ts: number, repliers?: number[]): Signed<RequestMsg> {
  const msg: RequestMsg = { type: 'request', client: 0, timestamp: ts, op: new Uint8Array([1, 2, 3, ts & 255]), ...(repliers !== undefined ? { repliers } : {}) };
  const body = encodeBody(msg);
  return { msg, body, sig: clientSigner.sign(concatBytes(domainTag(cluster.clusterId, 'request'), body)) };
}

function samples(): Signed[] {
  const a1 = authAs(1);
  const a2 = authAs(2);
  const pp = a1.sign<PrePrepareMsg>({ type: 'preprepare', view: 1, seq: 7, digest: digest(7), replica: 1, time: 1_700_000_000_123 });
  const prep = a2.sign({ type: 'prepare', view: 1, seq: 7, digest: digest(7), replica: 2 });
  const ck = a2.sign({ type: 'checkpoint', seq: 128, digest: digest(9), replica: 2, epoch: 0 });
  const vc = a2.sign({
    type: 'viewchange',
    view: 2,
    replica: 2,
    checkpoint: { epoch: 0, seq: 128, digest: digest(9), proof: [ck] },
    prepared: [{ prePrepare: pp as Signed<PrePrepareMsg>, prepares: [prep as Signed<never>] }],
  } as SignedMessage);
  const msgs: SignedMessage[] = [
    { type: 'reply', view: 3, client: 0, timestamp: 2 ** 50, replica: 2, result: new Uint8Array([9, 9]) },
    { type: 'commit', view: 1, seq: 7, digest: digest(7), replica: 2 },
    { type: 'refusal', replica: 2, client: 0, timestamp: 2 ** 50, digest: digest(3), reason: 'op-too-large', limit: 1_064_960 },
  ];
  return [request(1), request(2 ** 52), request(3, [1, 2]), request(4, [0, 65_535]), pp, prep, ck, vc, ...msgs.map((m) => a2.sign(m))];
}

test('every signed message type round-trips through a frame, with its raw body bytes kept', () => {
  for (const s of samples()) {
    const decoded = decodeFrame(encodeSignedFrame(s));
    assert.ok(decoded.ok, decoded.ok ? '' : decoded.reason);
    assert.equal(decoded.value.kind, 'signed');
    if (decoded.value.kind !== 'signed') continue;
    assert.deepEqual(plain(decoded.value.signed.body), plain(s.body));
    assert.deepEqual(plain(decoded.value.signed.sig), plain(s.sig));
    assert.deepEqual(plain(decoded.value.signed.msg), plain(s.msg));
    // Verification uses the bytes as received, never a re-encoding.
    assert.ok(freshAuth().verify(decoded.value.signed), `${s.msg.type} verifies after decoding`);
  }
});

test('a pre-prepare frame carries its batch; only a pre-prepare may carry one', () => {
  const [pp] = samples().filter((s) => s.msg.type === 'preprepare');
  const batch = [request(1), request(2)];
  const d = decodeFrame(encodeSignedFrame(pp!, batch));
  assert.ok(d.ok && d.value.kind === 'signed');
  assert.deepEqual(plain(d.value.kind === 'signed' && d.value.batch?.map((r) => r.body)), plain(batch.map((r) => r.body)));
  const withBatch = decodeFrame(encodeSignedFrame(request(3), batch));
  assert.equal(withBatch.ok, false);
});

test('link messages round-trip', () => {
  const links: LinkMessage[] = [
    { type: 'fetch', from: 1, to: 64, epoch: 0 },
    { type: 'batchreq', seq: 5, digest: digest(1) },
    { type: 'batch', seq: 5, digest: digest(1), batch: [request(1)], time: 1_700_000_000_123 },
    { type: 'batch', seq: 6, digest: digest(1), batch: [], time: 0 },
    { type: 'statereq', seq: 128, part: { kind: 'leaves', groups: [0, 3] } },
    { type: 'statereq', seq: 128, part: { kind: 'leaves', groups: [0, 3], have: [new Uint8Array([1, 2, 3, 4]), new Uint8Array(8)] } },
    { type: 'state', seq: 128, reply: { kind: 'leaves', groups: [{ group: 0, leaves: [digest(1), digest(2)] }] } },
    { type: 'state', seq: 128, reply: { kind: 'leaves', groups: [{ group: 3, leaves: [digest(2)], positions: [5] }, { group: 4, leaves: [], positions: [] }] } },
    { type: 'state', seq: 128, reply: { kind: 'partitions', indices: [1, 2], compressed: new Uint8Array([1, 2, 3]), rawBytes: 9 } },
    { type: 'newviewreq', view: 4 },
  ];
  for (const m of links) {
    const d = decodeFrame(encodeLinkFrame(m));
    assert.ok(d.ok && d.value.kind === 'link');
    if (d.value.kind === 'link') assert.deepEqual(plain(d.value.msg), plain(m));
  }
});

test('the batch time travels in the pre-prepare body and with every batch a link carries', () => {
  const [pp] = samples().filter((s) => s.msg.type === 'preprepare');
  const d = decodeBody(pp!.body);
  assert.ok(d.ok && d.value.type === 'preprepare');
  assert.equal(d.value.type === 'preprepare' && d.value.time, 1_700_000_000_123);
  // A pre-prepare body without a time (the five fields of a prepare or commit) is refused.
  const old = encodeCbor([3, 1, 7, digest(7), 1]);
  const r = decodeBody(old);
  assert.ok(!r.ok && /preprepare: wrong arity/.test(r.reason), r.ok ? 'decoded' : r.reason);
  const negative = encodeCbor([3, 1, 7, digest(7), 1, -1]);
  assert.equal(decodeBody(negative).ok, false, 'a negative time');
  const commit = a2Commit();
  const entry = { seq: 7, commits: [commit], batch: [request(1)], time: 1_700_000_000_123 };
  const fetched = decodeFrame(encodeLinkFrame({ type: 'fetched', entries: [entry], stable: { epoch: 0, seq: 0, digest: digest(0), proof: [] }, proofs: [] }));
  assert.ok(fetched.ok && fetched.value.kind === 'link' && fetched.value.msg.type === 'fetched');
  if (fetched.value.kind === 'link' && fetched.value.msg.type === 'fetched') assert.equal(fetched.value.msg.entries[0]!.time, 1_700_000_000_123);
  const noTime = encodeCbor([1, [21, [[7, [[commit.body, commit.sig]], [[request(1).body, request(1).sig]]]], [0, digest(0), [], 0], []]]);
  const bad = decodeFrame(noTime);
  assert.ok(!bad.ok && /entry: wrong arity/.test(bad.reason), bad.ok ? 'decoded' : bad.reason);
});

function a2Commit(): Signed<CommitMsg> {
  return authAs(2).sign<CommitMsg>({ type: 'commit', view: 1, seq: 7, digest: digest(7), replica: 2 });
}

test('a request for leaves needs one prefix string per group, and sparse leaves one position per leaf', () => {
  const badHave = encodeLinkFrame({ type: 'statereq', seq: 1, part: { kind: 'leaves', groups: [0, 1], have: [new Uint8Array(4)] } });
  const d1 = decodeFrame(badHave);
  assert.ok(!d1.ok && /have/.test(d1.reason), d1.ok ? 'decoded' : d1.reason);
  const badPositions = encodeLinkFrame({ type: 'state', seq: 1, reply: { kind: 'leaves', groups: [{ group: 0, leaves: [digest(1)], positions: [1, 2] }] } });
  const d2 = decodeFrame(badPositions);
  assert.ok(!d2.ok && /positions/.test(d2.reason), d2.ok ? 'decoded' : d2.reason);
});

test('changing any byte of a signed envelope makes it fail: decoding, type checks or signature verification', () => {
  for (const s of samples().slice(0, 4)) {
    const frame = encodeSignedFrame(s);
    for (let i = 0; i < frame.length; i++) {
      const bad = new Uint8Array(frame);
      bad[i]! ^= 0x01;
      const d = decodeFrame(bad);
      if (!d.ok || d.value.kind !== 'signed') continue; // rejected with a reason
      const auth = freshAuth();
      // A frame that still decodes must not verify as the same signer's statement.
      assert.equal(auth.verify(d.value.signed), false, `${s.msg.type}: byte ${i} flipped still verifies`);
    }
  }
});

test('the domain tag binds a signature to its cluster and message type', () => {
  const s = request(5);
  const other: ClusterConfig = { ...cluster, clusterId: 'another-cluster' };
  const auth = new Authenticator(other, { sign: () => new Uint8Array(64), verify: (k, d, g) => verifier.verify(k, d, g), hash: sha256 });
  assert.equal(auth.verify(s), false, 'a request signed for one cluster does not verify in another');
  // The same body bytes presented as another type (prepare) by a replica key does not verify either.
  assert.notDeepEqual(domainTag('x', 'prepare'), domainTag('x', 'commit'));
});

test('signatures made with node:crypto verify with @noble/ed25519 and the other way round', () => {
  const secret = randomSecretKey();
  const node = createNodeSigner(secret);
  const noble = createNobleSigner(secret);
  const body = encodeBody(request(9).msg);
  const data = concatBytes(domainTag(cluster.clusterId, 'request'), body);
  const sigNode = node.sign(data);
  const sigNoble = noble.sign(data);
  assert.deepEqual(plain(sigNode), plain(sigNoble), 'ed25519 is deterministic: both backends produce the same bytes');
  assert.ok(new NobleVerifier().verify(node.publicKey, data, sigNode));
  assert.ok(new NodeVerifier().verify(noble.publicKey, data, sigNoble));
});

test('random and truncated byte strings decode to a reason, never an exception', () => {
  const prng = new Prng(2026);
  let rejected = 0;
  for (let i = 0; i < 20_000; i++) {
    const bytes = prng.bytes(prng.int(96));
    // A valid-looking prefix sometimes, so that decoding goes deep.
    if (i % 3 === 0 && bytes.length > 2) {
      bytes[0] = 0x83 + prng.int(2);
      bytes[1] = prng.int(2);
    }
    const d = decodeFrame(bytes);
    if (!d.ok) {
      assert.equal(typeof d.reason, 'string');
      assert.ok(d.reason.length > 0);
      rejected++;
    }
    const b = decodeBody(bytes);
    if (!b.ok) assert.ok(b.reason.length > 0);
  }
  assert.ok(rejected > 19_000);
  for (const s of samples()) {
    const frame = encodeSignedFrame(s);
    for (let len = 0; len < frame.length; len++) {
      const d = decodeFrame(frame.subarray(0, len));
      assert.equal(d.ok, false, `${s.msg.type} truncated to ${len} bytes decoded`);
      if (!d.ok) assert.ok(d.reason.length > 0);
    }
  }
});

test('structurally wrong but well-formed CBOR is rejected with a reason naming the problem', () => {
  const body = encodeBody(request(1).msg);
  const frames: Array<[string, unknown, RegExp]> = [
    ['a map, not an array', { a: 1 }, /array/],
    ['an unknown frame kind', [7, body, new Uint8Array(64)], /frame\.kind/],
    ['a signature of the wrong length', [0, body, new Uint8Array(63)], /sig/],
  ];
  for (const [what, value, reason] of frames) {
    const d = decodeFrame(encodeCbor(value));
    assert.equal(d.ok, false, what);
    assert.match(d.ok ? '' : d.reason, reason, what);
  }
  const bodies: Array<[string, unknown, RegExp]> = [
    ['a 31-byte digest', [4, 0, 1, new Uint8Array(31), 1], /digest/],
    ['a negative sequence number', [4, 0, -1, digest(1), 1], /seq/],
    ['a fractional view', [4, 0.5, 1, digest(1), 1], /view/],
    ['an unknown message type', [99, 1, 2], /unknown message type/],
    ['a request with text instead of bytes as op', [1, 0, 1, 'op'], /op/],
    ['a request naming no repliers', [1, 0, 1, new Uint8Array(1), []], /repliers: empty/],
    ['a request naming repliers out of order', [1, 0, 1, new Uint8Array(1), [2, 1]], /repliers: not strictly increasing/],
    ['a request naming a replier twice', [1, 0, 1, new Uint8Array(1), [1, 1]], /repliers: not strictly increasing/],
    ['a request naming a replica id over 65535', [1, 0, 1, new Uint8Array(1), [65_536]], /repliers\[0\]/],
    ['a request naming 257 repliers', [1, 0, 1, new Uint8Array(1), Array.from({ length: 257 }, (_, i) => i)], /257 items exceeds 256/],
    ['a request whose repliers are not a list', [1, 0, 1, new Uint8Array(1), 3], /repliers: expected array/],
    ['a request with six fields', [1, 0, 1, new Uint8Array(1), [1], 0], /request: wrong arity/],
  ];
  for (const [what, value, reason] of bodies) {
    const d = decodeBody(encodeCbor(value));
    assert.equal(d.ok, false, what);
    assert.match(d.ok ? '' : d.reason, reason, what);
  }
});
