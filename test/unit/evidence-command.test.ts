/**
 * `pbft evidence list | export | verify` (src/cli/evidence.ts) against HTTP servers on 127.0.0.1
 * that play replicas serving GET /evidence, with a real keyring (real ed25519 keys): export keeps
 * what verifies, verify exits 0 only for valid evidence, 1 for evidence that does not verify, 2 for
 * input it cannot judge, always with one line per verdict or error and never a stack trace.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.ts';
import { EVIDENCE_EXIT_BAD_INPUT } from '../../src/cli/evidence.ts';
import { Authenticator } from '../../src/core/auth.ts';
import type { ClusterConfig } from '../../src/core/cluster.ts';
import { evidenceFileJson, voteEvidence, type VoteEvidence, type VoteMsg } from '../../src/core/evidence.ts';
import type { Signed } from '../../src/core/messages.ts';
import { CLUSTER_FILE, generateKeyring, loadIdentity } from '../../src/crypto/keyring.ts';
import { createNodeSigner, NodeVerifier, sha256 } from '../../src/crypto/node.ts';

let dir: string;
let keys: string;
let cluster: ClusterConfig;
const servers: http.Server[] = [];
/** What server i answers to GET /evidence (undefined: HTTP 404). */
const answers: Array<unknown> = [];
const verifier = new NodeVerifier();

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pbft-evidence-'));
  keys = join(dir, 'keys');
  for (let i = 0; i < 4; i++) {
    const server = http.createServer((req, res) => {
      const body = answers[i];
      res.statusCode = body === undefined || req.url !== '/evidence' ? 404 : 200;
      res.setHeader('content-type', 'application/json');
      res.setHeader('connection', 'close');
      res.end(body === undefined ? 'not found\n' : JSON.stringify(body));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
  }
  const urls = servers.map((s) => `ws://127.0.0.1:${(s.address() as AddressInfo).port}`);
  cluster = generateKeyring({ replicaUrls: urls, clients: 1, out: keys }).cluster;
});

after(async () => {
  for (const s of servers) {
    s.close();
    s.closeAllConnections();
  }
  rmSync(dir, { recursive: true, force: true });
});

/** A vote signed with replica `signer`'s own key from the keyring (or another replica's: a forgery). */
function vote(type: VoteMsg['type'], replica: number, view: number, seq: number, label: string, keyOf = replica): Signed<VoteMsg> {
  const { key } = loadIdentity(keys, 'replica', keyOf);
  const signer = createNodeSigner(key.secretKey);
  const auth = new Authenticator(cluster, { sign: (d) => signer.sign(d), verify: (k, d, s) => verifier.verify(k, d, s), hash: sha256 });
  return auth.sign<VoteMsg>((type === 'preprepare' ? { type, view, seq, digest: sha256(new TextEncoder().encode(label)), replica, time: 1_000 } : { type, view, seq, digest: sha256(new TextEncoder().encode(label)), replica }) as VoteMsg);
}

function file(items: VoteEvidence[], clusterId = cluster.clusterId): unknown {
  return JSON.parse(JSON.stringify(evidenceFileJson(clusterId, items.map((evidence, i) => ({ evidence, reportedBy: `replica ${i}` })), [])));
}

async function pbft(...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['node', 'pbft', ...args], { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out, err };
}

function writeJson(name: string, value: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value));
  return path;
}

const clusterFlag = (): string[] => ['--cluster', join(keys, CLUSTER_FILE)];

test('verify: valid evidence, exit 0 with a one-line verdict', async () => {
  const path = writeJson('valid.json', file([voteEvidence(vote('prepare', 3, 2, 40, 'a'), vote('prepare', 3, 2, 40, 'b'), 0)]));
  const r = await pbft('evidence', 'verify', path, ...clusterFlag());
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.equal(r.out.length, 1);
  assert.match(r.out[0]!, /^VALID: replica 3 signed two different PREPAREs for view 2, seq 40 .* both signatures verify with its key/);
  assert.deepEqual(r.err, []);
});

test('verify: a forged signature, the same digest, a different slot, an unknown signer: exit 1, INVALID', async () => {
  const a = vote('commit', 1, 0, 7, 'a');
  const b = vote('commit', 1, 0, 7, 'b');
  const cases: Array<[VoteEvidence, RegExp]> = [
    [voteEvidence(a, vote('commit', 1, 0, 7, 'b', 2), 0), /signature of the COMMIT does not verify/],
    [{ ...voteEvidence(a, b, 0), messages: [a, a] }, /no conflict: the same digest/],
    [{ ...voteEvidence(a, b, 0), messages: [a, vote('commit', 1, 0, 8, 'b')] }, /no conflict: different slots/],
    [voteEvidence(vote('commit', 9, 0, 7, 'a', 0), vote('commit', 9, 0, 7, 'b', 0), 0), /unknown signer: replica 9/],
  ];
  for (const [e, re] of cases) {
    const r = await pbft('evidence', 'verify', writeJson('bad.json', file([e])), ...clusterFlag());
    assert.equal(r.code, 1, `${re}: ${r.out.join('\n')} ${r.err.join('\n')}`);
    assert.equal(r.out.length, 1);
    assert.match(r.out[0]!, /^INVALID: /);
    assert.match(r.out[0]!, re);
  }
});

test('verify: several pieces, one line each and a summary; one invalid piece fails the file', async () => {
  const good = voteEvidence(vote('prepare', 3, 2, 41, 'a'), vote('prepare', 3, 2, 41, 'b'), 0);
  const bad = voteEvidence(vote('prepare', 2, 2, 41, 'a'), vote('prepare', 2, 2, 41, 'b', 3), 0);
  const r = await pbft('evidence', 'verify', writeJson('two.json', file([good, bad])), ...clusterFlag());
  assert.equal(r.code, 1);
  assert.equal(r.out.length, 3);
  assert.match(r.out[0]!, /^VALID: evidence\[0\]: /);
  assert.match(r.out[1]!, /^INVALID: evidence\[1\]: /);
  assert.equal(r.out[2], '1 of 2 pieces of evidence are valid');
});

test('verify: unusable input is one line on stderr and exit 2, never a stack trace', async () => {
  const good = file([voteEvidence(vote('prepare', 3, 2, 40, 'a'), vote('prepare', 3, 2, 40, 'b'), 0)]) as Record<string, unknown>;
  const cases: Array<[string[], RegExp]> = [
    [[join(dir, 'nope.json')], /nope\.json not found/],
    [[dir], /is a directory/],
    [[writeJson('text.json', 'not json {')], /is not JSON/],
    [[writeJson('other.json', { hello: 1 })], /not an evidence file/],
    [[writeJson('v2.json', { ...good, version: 2 })], /version 2 is not supported/],
    [[writeJson('empty.json', { ...good, evidence: [] })], /holds no evidence/],
    [[writeJson('cluster.json', file([voteEvidence(vote('prepare', 3, 2, 40, 'a'), vote('prepare', 3, 2, 40, 'b'), 0)], 'another-cluster'))], /about cluster "another-cluster"/],
    [[writeJson('hex.json', { ...good, evidence: [{ ...(good.evidence as object[])[0], messages: [{ body: 'xyz', sig: '00' }, { body: '00', sig: '00' }] }] })], /hex/],
  ];
  for (const [args, re] of cases) {
    const r = await pbft('evidence', 'verify', ...args, ...clusterFlag());
    assert.equal(r.code, EVIDENCE_EXIT_BAD_INPUT, `${re}: ${r.err.join('\n')}`);
    assert.deepEqual(r.out, []);
    assert.equal(r.err.length, 1);
    assert.match(r.err[0]!, /^pbft evidence: /);
    assert.match(r.err[0]!, re);
    assert.doesNotMatch(r.err[0]!, /\n|    at /);
  }
  const missing = await pbft('evidence', 'verify', join(dir, 'valid.json'), '--cluster', join(dir, 'no-cluster.json'));
  assert.equal(missing.code, EVIDENCE_EXIT_BAD_INPUT);
  assert.match(missing.err[0]!, /^pbft evidence: .*not found/);
});

test('list and export: what the replicas hold, deduplicated and verified, to a file that verify accepts', async () => {
  const pp = voteEvidence(vote('preprepare', 0, 0, 3, 'a'), vote('preprepare', 0, 0, 3, 'b'), 0);
  const prep = voteEvidence(vote('prepare', 2, 0, 3, 'a'), vote('commit', 2, 0, 3, 'b'), 0);
  const forged = voteEvidence(vote('commit', 1, 0, 3, 'a'), vote('commit', 1, 0, 3, 'b', 2), 0);
  answers[0] = file([]);
  answers[1] = file([pp, prep]);
  answers[2] = file([pp]);
  answers[3] = file([forged]);
  const list = await pbft('evidence', 'list', '--keys', keys);
  assert.equal(list.code, 0, list.err.join('\n'));
  assert.equal(list.out[0], 'replica 0: no evidence');
  assert.match(list.out.join('\n'), /replica 1: 2 pieces of evidence\n {2}preprepare: replica 0 signed two different PRE-PREPAREs for view 0, seq 3/);
  assert.match(list.out.join('\n'), /mixed: replica 2 signed a (PREPARE and a COMMIT|COMMIT and a PREPARE) with different digests/);
  assert.match(list.out[list.out.length - 1]!, /^4 pieces of evidence from 4 replicas, naming replicas 0, 1, 2$/);

  const out = join(dir, 'exported.json');
  const exp = await pbft('evidence', 'export', '--keys', keys, '--out', out);
  assert.equal(exp.code, 0, exp.err.join('\n'));
  assert.match(exp.out[0]!, /^wrote 2 pieces of evidence against replicas 0, 2 to /);
  assert.equal(exp.err.length, 1, 'the forgery served by replica 3 is left out, with one line');
  assert.match(exp.err[0]!, /^pbft evidence: replica 3 served evidence that does not verify, left out: /);
  const written = JSON.parse(readFileSync(out, 'utf8')) as { format: string; version: number; evidence: Array<{ reportedBy: string }> };
  assert.equal(written.format, 'pbft-evidence');
  assert.equal(written.version, 1);
  assert.deepEqual(written.evidence.map((e) => e.reportedBy), ['replica 0', 'replica 1']);
  const v = await pbft('evidence', 'verify', out, ...clusterFlag());
  assert.equal(v.code, 0, v.out.join('\n'));
  assert.equal(v.out.length, 3);

  // One replica only, by id.
  const one = await pbft('evidence', 'export', '--keys', keys, '--replica', '2', '--out', join(dir, 'one.json'));
  assert.equal(one.code, 0);
  assert.match(one.out[0]!, /^wrote 1 piece of evidence against replica 0 /);
  // Nothing to export: nothing written.
  const none = await pbft('evidence', 'export', '--keys', keys, '--replica', '0', '--out', join(dir, 'none.json'));
  assert.equal(none.code, 0);
  assert.match(none.out[0]!, /^no evidence to export: 1 replica answered, none holds any; .* not written$/);
});

test('list: a replica that does not answer is named; none answering is exit 1', async () => {
  answers[0] = file([]);
  answers[1] = undefined;
  answers[2] = undefined;
  answers[3] = undefined;
  const r = await pbft('evidence', 'list', '--keys', keys);
  assert.equal(r.code, 0);
  assert.equal(r.err.length, 3);
  assert.match(r.err[0]!, /^pbft evidence: replica 1 not asked: HTTP 404/);
  answers[0] = undefined;
  const n = await pbft('evidence', 'list', '--keys', keys);
  assert.equal(n.code, 1);
  assert.match(n.err[n.err.length - 1]!, /^pbft evidence: no replica of cluster \S+ answered$/);
  const bad = await pbft('evidence', 'list', '--keys', keys, '--replica', '17');
  assert.equal(bad.code, 1);
  assert.match(bad.err[0]!, /replica 17 is not in the keyring/);
});
