/**
 * A keyring for replicas on many hosts: `pbft keygen --replica-urls` and `--hosts-file`, every URL
 * validated, and a replica that needs only cluster.json and its own key.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkReplicaUrls, generateKeyring, KeyringError, loadCluster, loadIdentity, parseHostsFile } from '../../src/crypto/keyring.ts';
import { keygenMain } from '../../src/cli/keygen.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'pbft-keygen-hosts-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function keygen(...args: string[]): { code: number; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const code = keygenMain(['node', 'keygen', ...args], { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out, err };
}

const URLS = ['ws://10.0.0.11:7001', 'ws://10.0.0.12:7001', 'ws://replica-c.example:7001', 'ws://[fd00::4]:9000'];

describe('keygen --replica-urls', () => {
  it('gives each replica its own address and derives n and f from the list', () => {
    const out = join(dir, 'keys');
    const r = keygen('--out', out, '--replica-urls', URLS.join(','));
    assert.equal(r.code, 0, r.err.join('\n'));
    const cluster = loadCluster(join(out, 'cluster.json'));
    assert.deepEqual(cluster.replicas.map((x) => x.url), URLS);
    assert.equal(cluster.f, 1);
    assert.ok(r.out.some((l) => l.includes('replica 3  ws://[fd00::4]:9000')));
    const seven = Array.from({ length: 7 }, (_, i) => `ws://host-${i}:7001`);
    assert.equal(keygen('--out', join(dir, 'k7'), '--replica-urls', seven.join(' , ')).code, 0);
    assert.equal(loadCluster(join(dir, 'k7', 'cluster.json')).f, 2);
  });

  it('refuses bad lists with one clear line and writes nothing', () => {
    const cases: Array<[string[], RegExp]> = [
      [['--replica-urls', 'ws://a:1,ws://b:1,ws://c:1'], /3f\+1 replica URLs .* got 3/],
      [['--replica-urls', 'ws://a:1,ws://a:1,ws://b:1,ws://c:1'], /replicas 0 and 1 both use a:1/],
      [['--replica-urls', 'ws://a:1,http://b:1,ws://c:1,ws://d:1'], /replica 1: URL "http:\/\/b:1" must use ws:\/\//],
      [['--replica-urls', 'ws://a:1,ws://b,ws://c:1,ws://d:1'], /replica 1: URL .* must include a port/],
      [['--replica-urls', 'ws://a:1,ws://b:1,ws://c:1,ws://d:1/path'], /replica 3: URL .* must not have a path/],
      [['--replica-urls', 'ws://a:1,ws://b:1,ws://c:1,wss://d:1'], /replicas serve plain ws:\/\//],
      [['--replica-urls', 'ws://a:1,ws://b:1,ws://c:1,ws://d:1', '--host', 'x'], /do not combine it with --host or --base-port/],
      [['--replica-urls', 'ws://a:1,ws://b:1,ws://c:1,ws://d:1', '--replicas', '7'], /--replicas 7 does not match the 4 replica URLs/],
      [['--replica-urls', 'ws://a:1,ws://b:1,ws://c:1,ws://d:1', '--hosts-file', 'x'], /not both/],
      [['--replica-urls', 'ws://a:99999,ws://b:1,ws://c:1,ws://d:1'], /replica 0: URL/],
    ];
    for (const [args, message] of cases) {
      const out = join(dir, 'bad');
      const r = keygen('--out', out, ...args);
      assert.equal(r.code, 1, args.join(' '));
      assert.equal(r.err.length, 1, r.err.join('\n'));
      assert.match(r.err[0]!, /^keygen: /);
      assert.match(r.err[0]!, message);
      let written: string[] = [];
      try {
        written = readdirSync(out);
      } catch {
        // not created: fine
      }
      assert.deepEqual(written, [], `${args.join(' ')} wrote nothing`);
    }
  });

  it('checkReplicaUrls normalizes a trailing slash and names the replica at fault', () => {
    assert.deepEqual(checkReplicaUrls(['ws://A:1/', 'ws://b:2', 'ws://c:3', 'ws://d:4']), ['ws://a:1', 'ws://b:2', 'ws://c:3', 'ws://d:4']);
    assert.throws(() => checkReplicaUrls(['ws://a:1', 'not a url']), (e: unknown) => e instanceof KeyringError && /replica 1/.test(e.message));
  });
});

describe('keygen --hosts-file', () => {
  it('reads "<id> <host> <port>" and "<id> ws://host:port" lines, comments and blank lines', () => {
    const hosts = join(dir, 'hosts.config');
    writeFileSync(hosts, '# id host port\n0 10.0.0.11 7001\n\n1 10.0.0.12 7001   # rack 2\n2 ws://replica-c.example:7001\n3 fd00::4 9000\n');
    const out = join(dir, 'keys');
    const r = keygen('--out', out, '--hosts-file', hosts);
    assert.equal(r.code, 0, r.err.join('\n'));
    assert.deepEqual(loadCluster(join(out, 'cluster.json')).replicas.map((x) => x.url), URLS);
  });

  it('names the line at fault', () => {
    assert.throws(() => parseHostsFile('0 a 1\n2 b 1\n', 'h'), /h:2: expected replica id 1/);
    assert.throws(() => parseHostsFile('0 a\n', 'h'), /h:1: expected "<id> <host> <port>"/);
    assert.throws(() => parseHostsFile('x a 1\n', 'h'), /h:1: expected/);
    assert.throws(() => parseHostsFile('# nothing\n', 'h'), /h: no replicas listed/);
    const r = keygen('--out', join(dir, 'k'), '--hosts-file', join(dir, 'missing'));
    assert.equal(r.code, 1);
    assert.match(r.err[0]!, /cannot read --hosts-file .*ENOENT/);
  });
});

describe('what a host needs', () => {
  it('a replica loads its identity from a directory holding only cluster.json and its own key', () => {
    const keys = join(dir, 'keys');
    generateKeyring({ clients: 1, out: keys, replicaUrls: URLS });
    const host2 = join(dir, 'host-2');
    mkdirSync(host2, { mode: 0o700 });
    for (const f of ['cluster.json', 'replica-2.key']) copyFileSync(join(keys, f), join(host2, f));
    const identity = loadIdentity(host2, 'replica', 2);
    assert.equal(identity.cluster.replicas[2]!.url, 'ws://replica-c.example:7001');
    assert.throws(() => loadIdentity(host2, 'replica', 1), (e: unknown) => e instanceof KeyringError && e.code === 'NOT_FOUND');
  });
});
