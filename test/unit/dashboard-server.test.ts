/**
 * The dashboard's HTTP side (src/dashboard/server.ts) with a made-up cluster round instead of real
 * replicas: the page (self-contained, its inline script allowed by hash in the CSP and valid
 * JavaScript), the snapshot, the event stream (the latest snapshot at once, then one per round),
 * the refusals (404, 405, a Host that is not a loopback name), and `pbft dashboard`'s one-line
 * errors: a missing keyring, a port in use, a bad flag.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.ts';
import { generateKeyring } from '../../src/crypto/keyring.ts';
import type { RoundInput } from '../../src/dashboard/model.ts';
import { DASHBOARD_HTML, DASHBOARD_SCRIPT } from '../../src/dashboard/page.ts';
import { DashboardServer } from '../../src/dashboard/server.ts';

let dir: string;
let server: DashboardServer;
let base: string;
let rounds = 0;

function fakeRound(): RoundInput {
  rounds++;
  return {
    replicas: [0, 1, 2, 3].map((id) => ({
      replica: id,
      url: `ws://127.0.0.1:${9000 + id}`,
      reachable: true,
      status: { id, view: 0, primary: 0, status: 'normal', lastExecuted: rounds, counters: { requestsExecuted: rounds * 10 }, pid: 1 },
    })),
    epoch: 0,
    members: [0, 1, 2, 3],
    n: 4,
    f: 1,
    quorum: 3,
    up: 4,
  };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pbft-dashboard-'));
  const { cluster } = generateKeyring({ replicas: 4, clients: 0, out: join(dir, 'keys') });
  server = new DashboardServer({ cluster, host: '127.0.0.1', port: 0, intervalMs: 100 }, { poll: async () => fakeRound() });
  await server.start();
  base = server.url;
});

after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function get(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, base), { method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the page is one self-contained document; its inline script is valid JavaScript, allowed by its hash', async () => {
  const res = await get('/');
  assert.equal(res.status, 200);
  assert.match(String(res.headers['content-type']), /^text\/html/);
  assert.equal(res.body, DASHBOARD_HTML);
  assert.doesNotMatch(res.body, /\b(src|href)=["']?(https?:)?\/\//, 'no external resource');
  assert.doesNotMatch(res.body, /<link\b|<script\b[^>]*\bsrc=/, 'no linked stylesheet or script');
  const hash = createHash('sha256').update(DASHBOARD_SCRIPT).digest('base64');
  assert.ok(String(res.headers['content-security-policy']).includes(`'sha256-${hash}'`), 'the CSP allows exactly the inline script');
  assert.ok(res.body.includes(`<script>${DASHBOARD_SCRIPT}</script>`));
  assert.doesNotThrow(() => new Function(DASHBOARD_SCRIPT), 'the script parses');
  assert.doesNotMatch(DASHBOARD_SCRIPT, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/, 'remote text never goes through an HTML parser');
});

test('/snapshot.json is the latest snapshot; it moves with the rounds', async () => {
  const first = JSON.parse((await get('/snapshot.json')).body) as { clusterId: string; replicas: unknown[]; atMs: number };
  assert.equal(first.clusterId, server.model.clusterId);
  assert.equal(first.replicas.length, 4);
  const seen = server.rounds;
  for (let i = 0; i < 600 && server.rounds < seen + 2; i++) await new Promise((r) => setTimeout(r, 50));
  const later = JSON.parse((await get('/snapshot.json')).body) as { atMs: number };
  assert.ok(later.atMs > first.atMs);
});

test('/events streams the latest snapshot at once, then one per round', async () => {
  const events = await new Promise<string[]>((resolve, reject) => {
    const req = http.get(new URL('/events', base), (res) => {
      assert.match(String(res.headers['content-type']), /^text\/event-stream/);
      let buf = '';
      const got: string[] = [];
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (block.startsWith('data: ')) got.push(block.slice(6));
          if (got.length === 3) {
            req.destroy();
            resolve(got);
          }
        }
      });
    });
    req.on('error', (err) => (err.message === 'socket hang up' ? undefined : reject(err)));
  });
  const snaps = events.map((e) => JSON.parse(e) as { atMs: number; replicas: Array<{ lastExecuted: number }> });
  assert.ok(snaps[0]!.atMs < snaps[1]!.atMs && snaps[1]!.atMs < snaps[2]!.atMs);
  assert.ok(snaps[2]!.replicas[0]!.lastExecuted > snaps[0]!.replicas[0]!.lastExecuted);
});

test('refusals: another method, an unknown path, a Host that is not a loopback name (DNS rebinding)', async () => {
  assert.equal((await get('/', {}, 'POST')).status, 405);
  assert.equal((await get('/nope')).status, 404);
  assert.equal((await get('/', { host: 'attacker.example:80' })).status, 403);
  assert.equal((await get('/snapshot.json', { host: 'localhost' })).status, 200);
  assert.equal((await get('/', {}, 'HEAD')).status, 200);
});

async function run(args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['node', 'pbft', 'dashboard', ...args], { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out, err };
}

test('pbft dashboard: a missing keyring, a port in use, a bad flag: one line on stderr, exit status 1', async () => {
  const missing = await run(['--keys', join(dir, 'nowhere')]);
  assert.equal(missing.code, 1);
  assert.equal(missing.err.length, 1);
  assert.match(missing.err[0]!, /^pbft dashboard: cluster file .*nowhere.*not found$/);

  const blocker = http.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as AddressInfo).port;
  try {
    const inUse = await run(['--keys', join(dir, 'keys'), '--port', String(port)]);
    assert.equal(inUse.code, 1);
    assert.deepEqual(inUse.out, []);
    assert.equal(inUse.err.length, 1, inUse.err.join('\n'));
    assert.match(inUse.err[0]!, new RegExp(`^pbft dashboard: cannot listen on 127\\.0\\.0\\.1:${port}: the address is in use`));
  } finally {
    blocker.close();
  }

  for (const bad of [['--port', '70000'], ['--port', 'x'], ['--host', 'a b'], ['--interval', '5'], ['--history', '1']]) {
    const r = await run(['--keys', join(dir, 'keys'), ...bad]);
    assert.equal(r.code, 1, bad.join(' '));
    assert.equal(r.err.length, 1, bad.join(' '));
    assert.match(r.err[0]!, /^pbft: option '--/, bad.join(' '));
  }
});
