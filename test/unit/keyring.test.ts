import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CLUSTER_FILE,
  generateKeyring,
  KeyringError,
  keyFileName,
  loadCluster,
  loadIdentity,
  loadPrivateKey,
  parseCluster,
  serializeCluster,
  type KeyringErrorCode,
} from '../../src/crypto/keyring.ts';
import { createNodeSigner, NodeVerifier } from '../../src/crypto/node.ts';
import { keygenMain } from '../../src/cli/keygen.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const keygenScript = join(root, 'scripts', 'keygen.ts');

let dir = '';
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'pbft-keyring-test-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function throwsKeyring(fn: () => unknown, code: KeyringErrorCode, message?: RegExp): KeyringError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof KeyringError, `expected KeyringError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, `wrong code; message: ${caught.message}`);
  assert.doesNotMatch(caught.message, /\n/, 'message must be one line');
  if (message !== undefined) assert.match(caught.message, message);
  return caught;
}

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

function expectedNames(replicas: number, clients: number): string[] {
  // The operator's key signs membership changes.
  const names = [CLUSTER_FILE, 'operator.key'];
  for (let i = 0; i < replicas; i++) names.push(keyFileName('replica', i));
  for (let i = 0; i < clients; i++) names.push(keyFileName('client', i));
  return names.sort();
}

/** A valid cluster.json object to mutate. */
function validClusterJson(): Record<string, any> {
  const out = join(dir, 'valid');
  generateKeyring({ replicas: 4, clients: 2, out });
  return JSON.parse(readFileSync(join(out, CLUSTER_FILE), 'utf8')) as Record<string, any>;
}

describe('generateKeyring', () => {
  it('writes 0600 key files into a new 0700 directory and a readable cluster.json', () => {
    const out = join(dir, 'keys');
    const result = generateKeyring({ replicas: 4, clients: 3, out });
    assert.equal(mode(out), 0o700);
    assert.deepEqual(readdirSync(out).sort(), expectedNames(4, 3));
    assert.deepEqual(result.written.map((p) => p.slice(out.length + 1)).sort(), expectedNames(4, 3));
    assert.equal(result.written.at(-1), join(out, CLUSTER_FILE), 'cluster.json is written last');
    for (const name of expectedNames(4, 3)) {
      const expected = name === CLUSTER_FILE ? 0o644 : 0o600;
      assert.equal(mode(join(out, name)), expected, `${name} mode`);
    }
    assert.equal(result.cluster.f, 1);
    assert.deepEqual(
      result.cluster.replicas.map((r) => r.url),
      ['ws://127.0.0.1:7001', 'ws://127.0.0.1:7002', 'ws://127.0.0.1:7003', 'ws://127.0.0.1:7004'],
    );
    assert.deepEqual(result.cluster.clients.map((c) => c.id), [0, 1, 2]);
    assert.match(result.cluster.clusterId, /^[0-9a-f]{32}$/);
  });

  it('writes a cluster.json that loads back equal and serializes to the same text', () => {
    const out = join(dir, 'keys');
    const { cluster } = generateKeyring({ replicas: 4, clients: 2, out, host: 'node-a.example', basePort: 9000, clusterId: 'test-cluster' });
    const text = readFileSync(join(out, CLUSTER_FILE), 'utf8');
    const loaded = loadCluster(join(out, CLUSTER_FILE));
    assert.deepEqual(loaded, cluster);
    assert.equal(loaded.clusterId, 'test-cluster');
    assert.equal(loaded.replicas[3]!.url, 'ws://node-a.example:9003');
    assert.equal(serializeCluster(loaded), text);
  });

  it('writes private keys that load, match the keyring and sign verifiable messages', () => {
    const out = join(dir, 'keys');
    const { cluster } = generateKeyring({ replicas: 4, clients: 2, out });
    const verifier = new NodeVerifier();
    const message = new TextEncoder().encode('hello');
    for (const [principal, count] of [['replica', 4], ['client', 2]] as const) {
      for (let id = 0; id < count; id++) {
        const identity = loadIdentity(out, principal, id);
        assert.equal(identity.key.principal, principal);
        assert.equal(identity.key.id, id);
        assert.equal(identity.key.clusterId, cluster.clusterId);
        const entry = (principal === 'replica' ? cluster.replicas : cluster.clients)[id]!;
        assert.deepEqual(identity.key.publicKey, entry.publicKey);
        const signature = createNodeSigner(identity.key.secretKey).sign(message);
        assert.equal(verifier.verify(entry.publicKey, message, signature), true);
      }
    }
  });

  it('leaves no temporary files behind', () => {
    const out = join(dir, 'keys');
    generateKeyring({ replicas: 7, clients: 5, out });
    generateKeyring({ replicas: 4, clients: 5, out, force: true });
    const names = readdirSync(out);
    assert.equal(names.filter((n) => n.includes('.tmp')).length, 0, names.join(' '));
    assert.deepEqual(names.sort(), expectedNames(4, 5));
  });

  it('refuses to overwrite an existing keyring without force, and changes nothing', () => {
    const out = join(dir, 'keys');
    generateKeyring({ replicas: 4, clients: 1, out });
    const before = readFileSync(join(out, CLUSTER_FILE), 'utf8');
    const keyBefore = readFileSync(join(out, 'replica-0.key'), 'utf8');
    throwsKeyring(() => generateKeyring({ replicas: 4, clients: 1, out }), 'EXISTS', /cluster\.json already exists.*--force/);
    assert.equal(readFileSync(join(out, CLUSTER_FILE), 'utf8'), before);
    assert.equal(readFileSync(join(out, 'replica-0.key'), 'utf8'), keyBefore);
  });

  it('refuses to overwrite stray private keys without force even when cluster.json is absent', () => {
    const out = join(dir, 'keys');
    generateKeyring({ replicas: 4, clients: 1, out });
    rmSync(join(out, CLUSTER_FILE));
    throwsKeyring(() => generateKeyring({ replicas: 4, clients: 1, out }), 'EXISTS', /\.key already exists.*--force/);
  });

  it('overwrites with force and removes stale key files beyond the new counts', () => {
    const out = join(dir, 'keys');
    const first = generateKeyring({ replicas: 7, clients: 4, out });
    writeFileSync(join(out, 'notes.txt'), 'keep me');
    const second = generateKeyring({ replicas: 4, clients: 1, out, force: true });
    assert.notEqual(second.cluster.clusterId, first.cluster.clusterId);
    assert.deepEqual(readdirSync(out).sort(), [...expectedNames(4, 1), 'notes.txt'].sort());
    assert.deepEqual(
      second.removed.map((p) => p.slice(out.length + 1)).sort(),
      ['client-1.key', 'client-2.key', 'client-3.key', 'replica-4.key', 'replica-5.key', 'replica-6.key'],
    );
    assert.deepEqual(loadCluster(join(out, CLUSTER_FILE)), second.cluster);
    for (let id = 0; id < 4; id++) loadIdentity(out, 'replica', id);
    loadIdentity(out, 'client', 0);
  });

  for (const replicas of [0, 1, 3, 5, 6, -2, 4.5, NaN]) {
    it(`refuses ${replicas} replicas with BAD_REPLICA_COUNT and writes nothing`, () => {
      const out = join(dir, 'keys');
      throwsKeyring(
        () => generateKeyring({ replicas, clients: 1, out }),
        'BAD_REPLICA_COUNT',
        new RegExp(`3f\\+1 with f >= 1 \\(4, 7, 10, \\.\\.\\.\\); got ${String(replicas).replace('.', '\\.')}$`),
      );
      assert.equal(existsSync(out), false);
    });
  }

  it('accepts 7 replicas as f = 2', () => {
    const { cluster } = generateKeyring({ replicas: 7, clients: 0, out: join(dir, 'keys') });
    assert.equal(cluster.f, 2);
    assert.equal(cluster.replicas.length, 7);
    assert.deepEqual(cluster.clients, []);
    assert.equal(cluster.replicas[6]!.url, 'ws://127.0.0.1:7007');
  });

  for (const clients of [-1, 1.5, NaN]) {
    it(`refuses ${clients} clients`, () => {
      throwsKeyring(() => generateKeyring({ replicas: 4, clients, out: join(dir, 'keys') }), 'BAD_OPTION', /--clients/);
    });
  }

  it('refuses ports beyond 65535 and invalid hosts', () => {
    const out = join(dir, 'keys');
    throwsKeyring(() => generateKeyring({ replicas: 4, clients: 0, out, basePort: 65533 }), 'BAD_OPTION', /65536.*65535/);
    throwsKeyring(() => generateKeyring({ replicas: 4, clients: 0, out, basePort: 0 }), 'BAD_OPTION', /--base-port/);
    for (const host of ['', 'a b', 'x/y', 'user@host', 'host:1:z']) {
      throwsKeyring(() => generateKeyring({ replicas: 4, clients: 0, out, host }), 'BAD_OPTION', /--host/);
    }
    throwsKeyring(() => generateKeyring({ replicas: 4, clients: 0, out, clusterId: 'bad\nid' }), 'BAD_OPTION', /--cluster-id/);
    assert.equal(existsSync(out), false);
    const { cluster } = generateKeyring({ replicas: 4, clients: 0, out, host: '::1', basePort: 65532 });
    assert.equal(cluster.replicas[3]!.url, 'ws://[::1]:65535');
  });
});

describe('loadPrivateKey', () => {
  it('refuses world-readable and group-readable key files with INSECURE_PERMISSIONS', () => {
    const out = join(dir, 'keys');
    generateKeyring({ replicas: 4, clients: 0, out });
    const path = join(out, 'replica-0.key');
    for (const bad of [0o644, 0o640, 0o604, 0o660, 0o602]) {
      chmodSync(path, bad);
      throwsKeyring(() => loadPrivateKey(path), 'INSECURE_PERMISSIONS', new RegExp(`replica-0\\.key has mode 0${bad.toString(8)}.*chmod 600`));
    }
    chmodSync(path, 0o400);
    assert.equal(loadPrivateKey(path).id, 0);
    chmodSync(path, 0o600);
    assert.equal(loadPrivateKey(path, { principal: 'replica', id: 0 }).principal, 'replica');
  });

  it('refuses a key whose public key differs from the cluster entry', () => {
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    generateKeyring({ replicas: 4, clients: 1, out: a, clusterId: 'same' });
    generateKeyring({ replicas: 4, clients: 1, out: b, clusterId: 'same' });
    const clusterB = loadCluster(join(b, CLUSTER_FILE));
    throwsKeyring(
      () => loadPrivateKey(join(a, 'replica-1.key'), { principal: 'replica', id: 1, cluster: clusterB }),
      'KEY_MISMATCH',
      /replica-1\.key: public key differs from the cluster keyring's entry for replica 1/,
    );
    throwsKeyring(
      () => loadPrivateKey(join(a, 'client-0.key'), { principal: 'client', id: 0, cluster: clusterB }),
      'KEY_MISMATCH',
      /client 0/,
    );
    // The matching keyring accepts the same file.
    const clusterA = loadCluster(join(a, CLUSTER_FILE));
    assert.equal(loadPrivateKey(join(a, 'replica-1.key'), { principal: 'replica', id: 1, cluster: clusterA }).id, 1);
  });

  it('refuses a key for another principal, id or cluster, or one missing from the keyring', () => {
    const out = join(dir, 'keys');
    const { cluster } = generateKeyring({ replicas: 4, clients: 1, out });
    const path = join(out, 'replica-2.key');
    throwsKeyring(() => loadPrivateKey(path, { principal: 'replica', id: 3 }), 'KEY_MISMATCH', /is for replica 2, expected replica 3/);
    throwsKeyring(() => loadPrivateKey(path, { principal: 'client', id: 2 }), 'KEY_MISMATCH', /expected client 2/);
    const otherCluster = { ...cluster, clusterId: 'other' };
    throwsKeyring(() => loadPrivateKey(path, { principal: 'replica', id: 2, cluster: otherCluster }), 'KEY_MISMATCH', /cluster "other"/);
    const noClients = { ...cluster, clients: [] };
    throwsKeyring(() => loadPrivateKey(join(out, 'client-0.key'), { principal: 'client', id: 0, cluster: noClients }), 'KEY_MISMATCH', /not in the cluster keyring/);
  });

  it('refuses a key file whose publicKey is not derived from its secretKey', () => {
    const out = join(dir, 'keys');
    generateKeyring({ replicas: 4, clients: 0, out });
    const path = join(out, 'replica-0.key');
    const json = JSON.parse(readFileSync(path, 'utf8'));
    json.publicKey = JSON.parse(readFileSync(join(out, 'replica-1.key'), 'utf8')).publicKey;
    writeFileSync(path, JSON.stringify(json));
    assert.equal(mode(path), 0o600);
    throwsKeyring(() => loadPrivateKey(path), 'KEY_MISMATCH', /publicKey is not the key derived from secretKey/);
  });

  it('refuses malformed key files without revealing the secret', () => {
    const out = join(dir, 'keys');
    generateKeyring({ replicas: 4, clients: 0, out });
    const path = join(out, 'replica-0.key');
    const good = readFileSync(path, 'utf8');
    const secret = JSON.parse(good).secretKey as string;
    writeFileSync(path, good.slice(0, good.indexOf(secret) + 40));
    const err = throwsKeyring(() => loadPrivateKey(path), 'MALFORMED', /replica-0\.key: invalid JSON/);
    assert.ok(!err.message.includes(secret.slice(0, 16)), 'message leaks the secret');

    const variants: [string, (j: Record<string, unknown>) => void, RegExp][] = [
      ['short secret', (j) => { j.secretKey = secret.slice(0, 62); }, /secretKey must be 64 hex characters$/],
      ['bad principal', (j) => { j.principal = 'admin'; }, /principal must be "replica", "client" or "operator"/],
      ['negative id', (j) => { j.id = -1; }, /id must be a non-negative integer/],
      ['missing clusterId', (j) => { delete j.clusterId; }, /missing field "clusterId"/],
      ['version 2', (j) => { j.version = 2; }, /unsupported version 2/],
    ];
    for (const [name, mutate, message] of variants) {
      const json = JSON.parse(good);
      mutate(json);
      writeFileSync(path, JSON.stringify(json));
      const e = throwsKeyring(() => loadPrivateKey(path), 'MALFORMED', message);
      assert.ok(!e.message.includes(secret.slice(0, 16)), `${name}: message leaks the secret`);
    }
  });

  it('reports a missing key file or keyring as NOT_FOUND naming the file', () => {
    const out = join(dir, 'keys');
    generateKeyring({ replicas: 4, clients: 1, out });
    throwsKeyring(() => loadIdentity(out, 'client', 5), 'NOT_FOUND', /client-5\.key not found/);
    throwsKeyring(() => loadCluster(join(dir, 'nope.json')), 'NOT_FOUND', /nope\.json not found/);
    rmSync(join(out, CLUSTER_FILE));
    throwsKeyring(() => loadIdentity(out, 'replica', 0), 'NOT_FOUND', /cluster\.json not found/);
  });
});

describe('parseCluster / loadCluster', () => {
  it('refuses a cluster.json that is not valid JSON', () => {
    const path = join(dir, CLUSTER_FILE);
    writeFileSync(path, '{ "version": 1, ');
    throwsKeyring(() => loadCluster(path), 'MALFORMED', /cluster\.json: invalid JSON/);
  });

  it('accepts the generated shape (control for the variants below)', () => {
    const json = validClusterJson();
    const cluster = parseCluster(json, 'src');
    assert.equal(cluster.replicas.length, 4);
    assert.equal(cluster.clients.length, 2);
    assert.ok(cluster.replicas[0]!.publicKey instanceof Uint8Array);
    assert.equal(cluster.replicas[0]!.publicKey.length, 32);
  });

  const variants: [string, (j: Record<string, any>) => void, RegExp][] = [
    ['wrong n for f', (j) => { j.f = 2; }, /f = 2 needs n = 3f\+1 = 7 replicas, got 4/],
    ['too few replicas', (j) => { j.replicas.pop(); }, /f = 1 needs n = 3f\+1 = 4 replicas, got 3/],
    ['duplicate replica ids', (j) => { j.replicas[2].id = 1; }, /replicas\[2\]\.id must be 2 .*got 1/],
    ['replica ids out of order', (j) => { j.replicas[0].id = 3; j.replicas[3].id = 0; }, /replicas\[0\]\.id must be 0/],
    ['duplicate client ids', (j) => { j.clients[1].id = j.clients[0].id; }, /duplicate client id 0/],
    ['duplicate replica public keys', (j) => { j.replicas[3].publicKey = j.replicas[1].publicKey; }, /duplicate public key: replica 1 and replica 3/],
    ['client key equal to a replica key', (j) => { j.clients[0].publicKey = j.replicas[0].publicKey; }, /duplicate public key: replica 0 and client 0/],
    ['http url', (j) => { j.replicas[1].url = 'http://127.0.0.1:7002'; }, /replicas\[1\]\.url .* must use ws:\/\/ or wss:\/\//],
    ['url without port', (j) => { j.replicas[1].url = 'ws://127.0.0.1'; }, /replicas\[1\]\.url .* must include a port/],
    ['url not a url', (j) => { j.replicas[0].url = 'not a url'; }, /replicas\[0\]\.url .* is not a valid URL/],
    ['url with port 0', (j) => { j.replicas[0].url = 'ws://127.0.0.1:0'; }, /replicas\[0\]\.url "ws:\/\/127\.0\.0\.1:0" must include a port \(1-65535\)/],
    ['duplicate urls', (j) => { j.replicas[2].url = 'ws://127.0.0.1:7001/'; }, /duplicate url: replicas 0 and 2 both use 127\.0\.0\.1:7001/],
    ['missing clusterId', (j) => { delete j.clusterId; }, /missing field "clusterId"/],
    ['missing replica publicKey', (j) => { delete j.replicas[1].publicKey; }, /replicas\[1\]: missing field "publicKey"/],
    ['missing clients', (j) => { delete j.clients; }, /missing field "clients"/],
    ['unknown field', (j) => { j.extra = true; }, /unknown field "extra"/],
    ['version 2', (j) => { j.version = 2; }, /unsupported version 2/],
    ['f = 0', (j) => { j.f = 0; }, /f must be an integer >= 1, got 0/],
    ['fractional f', (j) => { j.f = 1.5; }, /f must be an integer >= 1, got 1\.5/],
    ['empty clusterId', (j) => { j.clusterId = ''; }, /clusterId must not be empty/],
    ['long clusterId', (j) => { j.clusterId = 'x'.repeat(129); }, /clusterId must be at most 128 characters/],
    ['unprintable clusterId', (j) => { j.clusterId = 'a\tb'; }, /clusterId must contain only printable/],
    ['short public key', (j) => { j.replicas[0].publicKey = j.replicas[0].publicKey.slice(2); }, /replicas\[0\]\.publicKey must be 64 hex characters/],
    ['non-hex public key', (j) => { j.clients[1].publicKey = 'zz' + j.clients[1].publicKey.slice(2); }, /clients\[1\]\.publicKey must be 64 hex/],
    ['public key not on the curve', (j) => { j.replicas[2].publicKey = '02' + '00'.repeat(31); }, /replicas\[2\]\.publicKey is not a valid ed25519 public key/],
    ['small-order public key', (j) => { j.replicas[2].publicKey = '01' + '00'.repeat(31); }, /replicas\[2\]\.publicKey is not a valid ed25519 public key/],
    ['negative client id', (j) => { j.clients[0].id = -1; }, /clients\[0\]\.id must be a non-negative integer/],
    ['clients not an array', (j) => { j.clients = {}; }, /clients must be an array/],
    ['replica not an object', (j) => { j.replicas[0] = 'r0'; }, /replicas\[0\] must be an object/],
    ['empty object', (j) => { for (const k of Object.keys(j)) delete j[k]; }, /missing field "version"/],
  ];
  for (const [name, mutate, message] of variants) {
    it(`refuses ${name} with MALFORMED`, () => {
      const json = validClusterJson();
      mutate(json);
      throwsKeyring(() => parseCluster(json, 'test-source'), 'MALFORMED', new RegExp(`^test-source: ${message.source}`));
      const path = join(dir, CLUSTER_FILE);
      writeFileSync(path, JSON.stringify(json));
      throwsKeyring(() => loadCluster(path), 'MALFORMED', message);
    });
  }

  it('refuses a JSON value that is not an object', () => {
    throwsKeyring(() => parseCluster([], 'src'), 'MALFORMED', /^src: must be a JSON object, got an array/);
    throwsKeyring(() => parseCluster(null, 'src'), 'MALFORMED', /got null/);
  });

  it('accepts wss urls, explicit default ports, no clients and sparse client ids', () => {
    const json = validClusterJson();
    json.replicas[0].url = 'wss://a.example:443';
    json.replicas[1].url = 'ws://a.example:80';
    json.replicas[2].url = 'ws://[::1]:7003';
    json.clients[0].id = 17;
    const cluster = parseCluster(json, 'src');
    assert.deepEqual(cluster.clients.map((c) => c.id), [17, 1]);
    json.clients = [];
    assert.deepEqual(parseCluster(json, 'src').clients, []);
  });
});

describe('keygen CLI', () => {
  function runScript(args: string[]): { status: number | null; stdout: string; stderr: string } {
    const res = spawnSync(process.execPath, ['--import', 'tsx', keygenScript, ...args], { cwd: root, encoding: 'utf8' });
    return { status: res.status, stdout: res.stdout, stderr: res.stderr };
  }

  function assertOneErrorLine(stderr: string, message: RegExp): void {
    const lines = stderr.split('\n');
    assert.equal(lines.length, 2, `expected exactly one line, got: ${JSON.stringify(stderr)}`);
    assert.equal(lines[1], '');
    assert.match(lines[0]!, /^keygen: /);
    assert.match(lines[0]!, message);
    assert.doesNotMatch(stderr, /\bat /, 'stack frame in stderr');
  }

  it('generates a keyring and prints a summary', () => {
    const out = join(dir, 'keys');
    const res = runScript(['--replicas', '4', '--clients', '2', '--out', out, '--base-port', '8100']);
    assert.equal(res.status, 0, res.stderr);
    assert.equal(res.stderr, '');
    assert.match(res.stdout, /f = 1/);
    assert.match(res.stdout, /ws:\/\/127\.0\.0\.1:8103/);
    assert.match(res.stdout, /2 clients/);
    assert.ok(res.stdout.includes(out));
    assert.deepEqual(readdirSync(out).sort(), expectedNames(4, 2));
  });

  it('exits 1 with one line for --replicas 5', () => {
    const res = runScript(['--replicas', '5', '--out', join(dir, 'keys')]);
    assert.equal(res.status, 1);
    assertOneErrorLine(res.stderr, /--replicas must be 3f\+1 with f >= 1 \(4, 7, 10, \.\.\.\); got 5$/);
    assert.equal(existsSync(join(dir, 'keys')), false);
  });

  it('exits 1 with one line for --replicas abc', () => {
    const res = runScript(['--replicas', 'abc', '--out', join(dir, 'keys')]);
    assert.equal(res.status, 1);
    assertOneErrorLine(res.stderr, /--replicas must be a non-negative integer; got "abc"/);
  });

  it('exits 1 with one line for an existing keyring without --force', () => {
    const out = join(dir, 'keys');
    generateKeyring({ replicas: 4, clients: 1, out });
    const res = runScript(['--out', out]);
    assert.equal(res.status, 1);
    assertOneErrorLine(res.stderr, /already exists; pass --force/);
  });

  it('exits 1 with one line for an unknown flag', () => {
    const res = runScript(['--out', join(dir, 'keys'), '--forse']);
    assert.equal(res.status, 1);
    assertOneErrorLine(res.stderr, /unknown option '--forse'/);
  });

  it('keygenMain reports bad numbers in one line and returns 1 (in process)', () => {
    const cases: [string[], RegExp][] = [
      [['--clients', '-1'], /--clients must be a non-negative integer; got "-1"/],
      [['--clients', '2.5'], /--clients must be a non-negative integer; got "2\.5"/],
      [['--base-port', '70000'], /--base-port must be an integer from 1 to 65535; got 70000/],
      [['--replicas'], /argument missing/],
      [['surplus'], /too many arguments/],
    ];
    for (const [args, message] of cases) {
      const out: string[] = [];
      const err: string[] = [];
      const status = keygenMain(['node', 'keygen', '--out', join(dir, 'never'), ...args], {
        out: (l) => out.push(l),
        err: (l) => err.push(l),
      });
      assert.equal(status, 1, args.join(' '));
      assert.equal(err.length, 1, `${args.join(' ')}: ${JSON.stringify(err)}`);
      assert.match(err[0]!, /^keygen: /);
      assert.doesNotMatch(err[0]!, /\n/);
      assert.match(err[0]!, message);
      assert.deepEqual(out, []);
    }
    assert.equal(existsSync(join(dir, 'never')), false);
  });

  it('keygenMain with --force replaces a keyring (in process)', () => {
    const out = join(dir, 'keys');
    mkdirSync(out);
    const first = generateKeyring({ replicas: 4, clients: 1, out });
    const lines: string[] = [];
    const status = keygenMain(['node', 'keygen', '--out', out, '--replicas', '7', '--clients', '0', '--cluster-id', 'prod-1', '--force'], {
      out: (l) => lines.push(l),
      err: (l) => assert.fail(l),
    });
    assert.equal(status, 0);
    const cluster = loadCluster(join(out, CLUSTER_FILE));
    assert.equal(cluster.clusterId, 'prod-1');
    assert.notEqual(cluster.clusterId, first.cluster.clusterId);
    assert.equal(cluster.f, 2);
    assert.deepEqual(readdirSync(out).sort(), expectedNames(7, 0));
    assert.ok(lines.some((l) => l.includes('f = 2')));
    assert.ok(lines.some((l) => l.includes('0 clients')));
  });
});
