/**
 * `pbft status` (src/cli/status.ts) against HTTP servers on 127.0.0.1 that play replicas: it counts
 * a replica as reachable only when its /status names this keyring's cluster id and the replica's own
 * id, and it exits non-zero (2) when fewer than 2f+1 are reachable, 0 otherwise.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.ts';
import { STATUS_EXIT_NO_QUORUM } from '../../src/cli/status.ts';
import { generateKeyring } from '../../src/crypto/keyring.ts';

let dir: string;
let clusterId: string;
const servers: http.Server[] = [];
/** What server i answers to GET /status (undefined: HTTP 503). */
const answers: Array<Record<string, unknown> | undefined> = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pbft-status-'));
  for (let i = 0; i < 4; i++) {
    const server = http.createServer((req, res) => {
      const body = answers[i];
      res.statusCode = body === undefined ? 503 : 200;
      res.setHeader('content-type', 'application/json');
      res.setHeader('connection', 'close'); // every status run dials anew, as a new process does
      res.end(body === undefined ? 'starting\n' : JSON.stringify(body));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
  }
  const urls = servers.map((s) => `ws://127.0.0.1:${(s.address() as AddressInfo).port}`);
  clusterId = generateKeyring({ replicaUrls: urls, clients: 0, out: join(dir, 'keys') }).cluster.clusterId;
});

after(async () => {
  for (const s of servers) {
    s.close();
    s.closeAllConnections();
  }
  rmSync(dir, { recursive: true, force: true });
});

async function status(json: boolean): Promise<{ code: number; out: string; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['node', 'pbft', 'status', '--keys', join(dir, 'keys'), ...(json ? ['--json'] : [])], {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
  });
  return { code, out: out.join('\n'), err };
}

const replicaStatus = (id: number, cid = clusterId): Record<string, unknown> => ({ clusterId: cid, id, view: 0, primary: 0, lastExecuted: 5 });

test('4 of 4 replicas of this cluster: exit 0', async () => {
  for (let i = 0; i < 4; i++) answers[i] = replicaStatus(i);
  const r = await status(false);
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.match(r.out, /4 of 4 replicas reachable/);
  assert.deepEqual(r.err, []);
});

test('another cluster answering at every address: none reachable, exit non-zero', async () => {
  for (let i = 0; i < 4; i++) answers[i] = replicaStatus(i, 'someone-elses-cluster');
  const r = await status(true);
  assert.equal(r.code, STATUS_EXIT_NO_QUORUM);
  const reports = JSON.parse(r.out) as Array<{ reachable: boolean; error?: string }>;
  assert.ok(reports.every((x) => !x.reachable && /of cluster someone-elses-cluster, not of this keyring's cluster/.test(x.error ?? '')), r.out);
  assert.equal(r.err.length, 1);
  assert.match(r.err[0]!, /^pbft status: 0 of 4 replicas of cluster \S+ reachable, fewer than a quorum \(2f\+1 = 3\)/);
});

test('a replica answering with another id, or with no cluster id, does not count', async () => {
  answers[0] = replicaStatus(0);
  answers[1] = replicaStatus(1);
  answers[2] = replicaStatus(3); // replica 3's /status at replica 2's address
  answers[3] = { id: 3, view: 0 }; // no clusterId
  let r = await status(true);
  assert.equal(r.code, STATUS_EXIT_NO_QUORUM, '2 of 4 is fewer than a quorum');
  const reports = JSON.parse(r.out) as Array<{ replica: number; reachable: boolean; error?: string }>;
  assert.deepEqual(reports.map((x) => x.reachable), [true, true, false, false]);
  assert.match(reports[2]!.error!, /answers as replica 3 of this cluster, not replica 2/);
  assert.match(reports[3]!.error!, /does not name a cluster id/);

  answers[2] = replicaStatus(2);
  r = await status(false);
  assert.equal(r.code, 0, 'three of four is a quorum');
  assert.match(r.out, /3 of 4 replicas reachable/);
});

test('equivocation evidence a replica holds is shown, with the replicas it names', async () => {
  for (let i = 0; i < 4; i++) answers[i] = { ...replicaStatus(i), evidence: { held: 0, signers: [] } };
  answers[1] = { ...replicaStatus(1), evidence: { held: 2, signers: [3] } };
  const r = await status(false);
  assert.equal(r.code, 0, r.err.join('\n'));
  const lines = r.out.split('\n');
  assert.match(lines[1]!, /evidence$/);
  assert.match(lines.find((l) => l.startsWith('1 '))!, /2 \(against 3\)$/);
  assert.equal(lines[lines.length - 1], 'equivocation evidence held against replica 3: pbft evidence list, pbft evidence export --out FILE');
});

test('0 of 4 reachable (nothing listening, or every replica still starting): exit non-zero', async () => {
  for (let i = 0; i < 4; i++) answers[i] = undefined;
  let r = await status(false);
  assert.equal(r.code, STATUS_EXIT_NO_QUORUM);
  assert.match(r.out, /0 of 4 replicas reachable/);
  assert.match(r.out, /HTTP 503/);
  for (const s of servers) {
    s.close();
    s.closeAllConnections();
  }
  r = await status(true);
  assert.equal(r.code, STATUS_EXIT_NO_QUORUM);
  assert.ok((JSON.parse(r.out) as Array<{ reachable: boolean; error: string }>).every((x) => !x.reachable && /ECONNREFUSED/.test(x.error)), r.out);
});
