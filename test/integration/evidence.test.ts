/**
 * Equivocation evidence with real replica processes and the real CLI. Replica 3 (the fixture's
 * `equivocate` fault) sends, after each PREPARE and COMMIT, a second one for the same (view, seq)
 * with another digest, and after each reply a second reply with another result, all validly signed.
 *
 *   - the correct replicas keep the evidence against replica 3 (and no other): /status, /metrics,
 *     `pbft status`, `pbft evidence list`; `pbft evidence export` writes a file that
 *     `pbft evidence verify` accepts offline with cluster.json alone (exit 0, a VALID line each);
 *     a tampered file is INVALID (exit 1), unusable input one line on stderr (exit 2);
 *   - the evidence survives a restart of the replica that holds it (it is in its RocksDB);
 *   - the SDK catches replica 3's two replies to one request; its evidenceFile() verifies too.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PbftClient } from '../../src/client/client.ts';
import type { ReplyEvidence } from '../../src/core/evidence.ts';
import { CLUSTER_FILE } from '../../src/crypto/keyring.ts';
import { LAUNCHER, REPO_ROOT, TestCluster, track, waitFor } from './helpers.ts';

let tc: TestCluster;
let client: PbftClient;
const replyEvidence: ReplyEvidence[] = [];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function pbft(args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const proc = track(spawn(process.execPath, [LAUNCHER, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    proc.stdout?.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const guard = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`pbft ${args.join(' ')} did not finish within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    proc.once('exit', (code) => {
      clearTimeout(guard);
      resolve({ code, stdout, stderr });
    });
  });
}

const lines = (text: string): string[] => text.split('\n').filter((l) => l.trim() !== '');

before(async () => {
  tc = await TestCluster.create({ name: 'evidence', faults: true });
  tc.setFault(3, { mode: 'equivocate' });
  await tc.startAll();
  client = await tc.client(0, { timeoutMs: 20_000 });
  client.on('equivocation', (e) => replyEvidence.push(e));
});

after(async () => {
  await tc?.destroy();
});

test('correct replicas keep evidence against the equivocating replica only: status, metrics, list', async () => {
  for (let i = 0; i < 8; i++) await client.put(`k${i}`, `v${i}`);
  // A replica checks no vote that arrives after its quorum (README, "What the shell and the core do
  // for speed"), so it sees replica 3's second vote only when that vote comes early enough: a
  // matter of arrival order per request. More requests are more chances (one CI run gave replica 2
  // none in 8 puts).
  let more = 0;
  for (const id of [0, 1, 2]) {
    const s = await waitFor(async () => {
      const st = await tc.status(id);
      if (st.evidence.held > 0) return st;
      await client.put(`more${more}`, `v${more++}`);
      return undefined;
    }, `replica ${id} to hold evidence`);
    assert.deepEqual(s.evidence.signers, [3], `replica ${id} names only replica 3`);
    assert.ok((s.misbehaviour.equivocation ?? 0) > 0);
  }
  const metrics = await tc.metrics(0);
  const held = [...metrics.matchAll(/^pbft_equivocation_evidence_total\{kind="(\w+)"\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[2]), 0);
  assert.ok(held > 0, 'pbft_equivocation_evidence_total counts the evidence');
  assert.match(metrics, /^pbft_peer_misbehaviour_total\{code="equivocation"\} [1-9]/m);

  const status = await pbft(['status', '--keys', tc.keysDir]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /equivocation evidence held against replica 3: pbft evidence list/);

  const list = await pbft(['evidence', 'list', '--keys', tc.keysDir]);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /replica 3 signed /);
  assert.doesNotMatch(list.stdout, /replica [012] signed /);
  assert.match(lines(list.stdout).at(-1)!, /pieces? of evidence from 4 replicas, naming replica 3$/);
});

test('pbft evidence export writes a file that pbft evidence verify accepts offline; tampering is caught', async () => {
  const out = join(tc.dir, 'evidence.json');
  const exp = await pbft(['evidence', 'export', '--keys', tc.keysDir, '--out', out]);
  assert.equal(exp.code, 0, exp.stderr);
  assert.match(exp.stdout, /^wrote \d+ pieces? of evidence against replica 3 to /);
  assert.equal(exp.stderr, '');

  const clusterFile = join(tc.keysDir, CLUSTER_FILE);
  const v = await pbft(['evidence', 'verify', out, '--cluster', clusterFile]);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  const verdicts = lines(v.stdout);
  const items = (JSON.parse(readFileSync(out, 'utf8')) as { evidence: unknown[] }).evidence.length;
  assert.equal(verdicts.length, items > 1 ? items + 1 : 1);
  for (const l of verdicts.slice(0, items)) assert.match(l, /^VALID: (evidence\[\d+\]: )?replica 3 signed .* both signatures verify/);

  // One flipped signature byte: that piece is INVALID, exit 1.
  const file = JSON.parse(readFileSync(out, 'utf8')) as { evidence: Array<{ messages: Array<{ sig: string }> }> };
  const sig = file.evidence[0]!.messages[1]!.sig;
  file.evidence[0]!.messages[1]!.sig = (sig[0] === '0' ? '1' : '0') + sig.slice(1);
  const tampered = join(tc.dir, 'tampered.json');
  writeFileSync(tampered, JSON.stringify(file));
  const t = await pbft(['evidence', 'verify', tampered, '--cluster', clusterFile]);
  assert.equal(t.code, 1);
  assert.match(lines(t.stdout)[0]!, /^INVALID: .*signature .* does not verify/);

  // Not JSON: one line on stderr, exit 2, no stack trace.
  const junk = join(tc.dir, 'junk.json');
  writeFileSync(junk, '{ not json');
  const j = await pbft(['evidence', 'verify', junk, '--cluster', clusterFile]);
  assert.equal(j.code, 2);
  assert.equal(lines(j.stderr).length, 1, j.stderr);
  assert.match(j.stderr, /^pbft evidence: .*is not JSON/);
  assert.doesNotMatch(j.stderr, /^\s+at /m);
});

test('the evidence survives a restart of the replica that holds it', async () => {
  const before = (await tc.status(1)).evidence.held;
  assert.ok(before > 0);
  // Equivocating no more: what replica 1 holds after the restart is what it had on disk.
  tc.setFault(3, { mode: 'none' });
  await tc.stop(1);
  await tc.start(1);
  const after = (await tc.status(1)).evidence;
  assert.ok(after.held >= before, `held ${after.held} after the restart, ${before} before`);
  assert.deepEqual(after.signers, [3]);
  const list = await pbft(['evidence', 'list', '--keys', tc.keysDir, '--replica', '1']);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /^replica 1: \d+ pieces? of evidence/);
});

test("the SDK catches the replica's two different replies to one request, and its evidence file verifies", async () => {
  tc.setFault(3, { mode: 'equivocate' });
  await new Promise((r) => setTimeout(r, 100)); // the fixture reads the fault file at most every 50 ms
  await waitFor(async () => {
    await client.put('reply', String(Date.now()));
    return replyEvidence.length > 0;
  }, 'the client to catch replica 3');
  assert.ok(replyEvidence.every((e) => e.signer === 3 && e.kind === 'reply'));
  const path = join(tc.dir, 'replies.json');
  writeFileSync(path, JSON.stringify(client.evidenceFile()));
  const v = await pbft(['evidence', 'verify', path, '--cluster', join(tc.keysDir, CLUSTER_FILE)]);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  assert.match(lines(v.stdout)[0]!, /^VALID: (evidence\[0\]: )?replica 3 signed two different results for the request of client 0/);
});
