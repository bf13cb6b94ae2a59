/**
 * The package as a user gets it: `npm pack` (which builds dist/ through `prepack`), the tarball
 * installed into a fresh project in a temporary directory, then
 * - plain `node` (no tsx) imports `pbft-kv`, `pbft-kv/browser` and `pbft-kv/server`; the client
 *   entry loads no native addon (connecting loads libsodium's, sodium-native, unless PBFT_CRYPTO=node),
 *   and neither rocksdb nor any dev tool (tsx, esbuild, typescript) was installed;
 * - the installed `pbft` bin runs the built JavaScript (`--help`, `keygen`), and a client built from
 *   the installed SDK reads that keyring by path and fails to reach the (absent) replicas with a
 *   coded ConnectError;
 * - strict `tsc --noEmit` type-checks a Node consumer (with @types/node) and a browser consumer
 *   (DOM lib, no Node types) against the shipped .d.ts files, skipLibCheck off;
 * - esbuild bundles `pbft-kv/browser` for the browser platform with no externals.
 * The install prefers the local npm cache (filled by `npm ci`) and falls back to the registry.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

let dir: string;
let project: string;
let tarball: string;

function run(command: string, args: string[], options: SpawnSyncOptions = {}): string {
  const res = spawnSync(command, args, { encoding: 'utf8', timeout: 120_000, ...options });
  const output = `${String(res.stdout ?? '')}${String(res.stderr ?? '')}`;
  assert.equal(res.status, 0, `${command} ${args.join(' ')} exited with ${res.status ?? res.signal}:\n${output}${res.error ? `\n${res.error.message}` : ''}`);
  return String(res.stdout ?? '');
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'pbft-pack-'));
  // --json: the file name, and the list of files packed (prepack's build output goes to stderr).
  const packed = JSON.parse(run(NPM, ['pack', '--json', '--pack-destination', dir], { cwd: ROOT })) as { filename: string; files: { path: string }[] }[];
  tarball = join(dir, packed[0]!.filename);
  const files = packed[0]!.files.map((f) => f.path);
  writeFileSync(join(dir, 'files.json'), JSON.stringify(files));
  project = join(dir, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { 'pbft-kv': `file:${tarball}` } }));
  run(NPM, ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: project });
});

after(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

test('the tarball holds dist (JavaScript and .d.ts), the bin and the README; no sources, tests or keys', () => {
  const files = JSON.parse(readFileSync(join(dir, 'files.json'), 'utf8')) as string[];
  for (const f of ['package.json', 'README.md', 'bin/pbft.mjs', 'dist/client/index.js', 'dist/client/index.d.ts', 'dist/client/browser.js', 'dist/client/browser.d.ts', 'dist/server.js', 'dist/server.d.ts', 'dist/cli/main.js']) {
    assert.ok(files.includes(f), `${f} is packed`);
  }
  assert.deepEqual(files.filter((f) => /^(src|test|keys|data|scripts|bench)\//.test(f) || f.endsWith('.key') || f.endsWith('.ts') && !f.endsWith('.d.ts')), []);
});

test('a client install has no rocksdb, no tsx, esbuild or typescript', () => {
  for (const name of ['rocksdb', 'tsx', 'esbuild', 'typescript', 'kubernetes-models']) {
    assert.ok(!existsSync(join(project, 'node_modules', name)), `${name} is not installed`);
  }
  assert.ok(existsSync(join(project, 'node_modules', 'pbft-kv', 'dist', 'client', 'index.js')));
});

test('plain node imports the three entries; the client entry loads no native addon (connecting: libsodium only); the installed SDK reads a keyring by path', () => {
  writeFileSync(
    join(project, 'use.mjs'),
    `
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const natives = () => Object.keys(require.cache).filter((k) => k.endsWith('.node'));

const sdk = await import('pbft-kv');
assert.equal(typeof sdk.PbftClient.connect, 'function');
assert.equal(typeof sdk.clusterFromJson, 'function');
assert.deepEqual(natives(), [], 'the client entry loads no native addon');
assert.throws(() => sdk.clusterFromJson({ version: 1 }), (e) => e.code === 'BAD_CONFIG' && e.reason === 'MALFORMED');

// A keyring made by the installed bin; nothing listens at its ports (1-4 are privileged, unused here).
const { readFileSync } = await import('node:fs');
const cluster = sdk.clusterFromJson(JSON.parse(readFileSync('keys/cluster.json', 'utf8')));
const key = sdk.clientKeyFromJson(JSON.parse(readFileSync('keys/client-0.key', 'utf8')), cluster);
assert.equal(key.id, 0);
await assert.rejects(
  sdk.PbftClient.connect({ cluster: 'keys/cluster.json', key: 'keys/client-0.key', timeoutMs: 300 }),
  (e) => e instanceof sdk.ConnectError && e.code === 'CONNECT_FAILED',
);
// Connecting loads the signature backend: libsodium's prebuilt addon (sodium-native, an optional
// dependency) unless PBFT_CRYPTO=node; never rocksdb or anything else native.
const expected = process.env.PBFT_CRYPTO === 'node' ? [] : ['sodium-native.node'];
assert.deepEqual(natives().map((k) => k.split('/').pop()), expected, 'connecting (keyring loader, signature backend, ws)');
assert.ok(natives().every((k) => k.includes('/node_modules/sodium-native/')), natives().join(', '));

const browser = await import('pbft-kv/browser');
assert.equal(browser.PbftClient, sdk.PbftClient, 'one client class');
const server = await import('pbft-kv/server');
assert.equal(typeof server.ReplicaNode, 'function');
assert.equal(typeof server.MemoryStorage, 'function');
assert.equal(typeof server.KvStore, 'function');
console.log('OK');
`,
  );
  run(join(project, 'node_modules', '.bin', 'pbft'), ['keygen', '--out', 'keys', '--replicas', '4', '--clients', '1', '--base-port', '1'], { cwd: project });
  assert.match(run(process.execPath, ['use.mjs'], { cwd: project }), /^OK$/m);
  assert.match(run(process.execPath, ['use.mjs'], { cwd: project, env: { ...process.env, PBFT_CRYPTO: 'node' } }), /^OK$/m, 'node:crypto: no native addon at all');
});

test('the installed pbft bin runs the built JavaScript; a replica without rocksdb says what to install', () => {
  const bin = join(project, 'node_modules', '.bin', 'pbft');
  const help = run(bin, ['--help'], { cwd: project });
  assert.match(help, /Usage: pbft/);
  assert.match(help, /replica/);
  assert.ok(!existsSync(join(project, 'node_modules', 'pbft-kv', 'src')), 'there are no sources it could run instead');
  // The keyring of the test above (ports 1-4): the store fails to open before anything listens.
  const res = spawnSync(bin, ['replica', '--keys', 'keys', '--id', '0', '--data', 'data-0'], { cwd: project, encoding: 'utf8', timeout: 60_000 });
  assert.equal(res.status, 1, res.stderr);
  assert.match(res.stderr, /rocksdb package is not installed.*npm install rocksdb/);
});

const STRICT = {
  target: 'ES2022',
  module: 'NodeNext',
  moduleResolution: 'NodeNext',
  strict: true,
  noUncheckedIndexedAccess: true,
  exactOptionalPropertyTypes: true,
  noImplicitOverride: true,
  verbatimModuleSyntax: true,
  skipLibCheck: false,
  noEmit: true,
};

test('strict tsc --noEmit type-checks a Node consumer and a browser consumer against the shipped .d.ts', () => {
  writeFileSync(
    join(project, 'node-consumer.ts'),
    `
import { PbftClient, QuorumFailure, TimeoutError, clusterFromJson, type FaultyReplyEvidence, type PbftClientErrorCode, type Value } from 'pbft-kv';
import { ReplicaNode, MemoryStorage, createLogger, type Result, type StateMachine } from 'pbft-kv/server';

const client: PbftClient = await PbftClient.connect({ cluster: 'keys/cluster.json', key: 'keys/client-0.key', timeoutMs: 5_000 });
client.on('faulty-reply', (e: FaultyReplyEvidence) => console.warn(e.replica));
await client.put('a', '1');
const v: Value | null = await client.get('a');
const { swapped } = await client.cas('a', '1', new Uint8Array([2]));
try {
  await client.del('a');
} catch (err) {
  if (err instanceof QuorumFailure) console.log(err.replies.length);
  else if (err instanceof TimeoutError) console.log(err.timeoutMs);
}
const code: PbftClientErrorCode = 'BAD_CONFIG';
console.log(v, swapped, code, clusterFromJson);

class Counter implements StateMachine {
  private n = 0;
  execute(): Uint8Array { this.n++; return new Uint8Array([this.n]); }
  snapshot(): Uint8Array { return new Uint8Array([this.n]); }
  restore(bytes: Uint8Array): Result { this.n = bytes[0] ?? 0; return { ok: true, value: undefined }; }
  digest(): Uint8Array { return new Uint8Array(32); }
}
console.log(ReplicaNode, MemoryStorage, createLogger, Counter);
`,
  );
  writeFileSync(
    join(project, 'browser-consumer.ts'),
    `
import { PbftClient, clusterFromJson, clientKeyFromJson, ClientConfigError } from 'pbft-kv/browser';
const cluster = clusterFromJson(await (await fetch('/cluster.json')).json());
const key = clientKeyFromJson(JSON.parse(localStorage.getItem('key') ?? 'null'), cluster);
const client = await PbftClient.connect({ cluster, key, WebSocketImpl: WebSocket });
document.title = String(await client.get('a'));
const e: unknown = null;
if (e instanceof ClientConfigError) console.log(e.code, e.reason);
`,
  );
  const typeRoots = [join(ROOT, 'node_modules', '@types')];
  writeFileSync(join(project, 'tsconfig.node.json'), JSON.stringify({ compilerOptions: { ...STRICT, lib: ['ES2022'], types: ['node'], typeRoots }, files: ['node-consumer.ts'] }));
  writeFileSync(join(project, 'tsconfig.browser.json'), JSON.stringify({ compilerOptions: { ...STRICT, lib: ['ES2022', 'DOM'], types: [] }, files: ['browser-consumer.ts'] }));
  run(process.execPath, [TSC, '-p', 'tsconfig.node.json'], { cwd: project });
  run(process.execPath, [TSC, '-p', 'tsconfig.browser.json'], { cwd: project });
});

test('esbuild bundles the installed pbft-kv/browser for browsers, with no externals', async () => {
  const result = await esbuild.build({
    stdin: { contents: "export * from 'pbft-kv/browser';", resolveDir: project, loader: 'js' },
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  const inputs = Object.keys(result.metafile.inputs);
  assert.ok(inputs.some((f) => f.endsWith('pbft-kv/dist/client/pbft-client.js')));
  assert.deepEqual(inputs.filter((f) => f.includes('node:') || f.includes('/dist/crypto/keyring.js') || f.includes('/dist/crypto/node.js')), []);
});
