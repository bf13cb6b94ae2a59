/**
 * The browser SDK in a real browser: the page script (fixtures/browser-page.ts, which imports only
 * src/client/browser.ts) is bundled by esbuild for the browser platform with no externals and run
 * in headless Chromium (driven over CDP, chromium.ts) against four replica processes on 127.0.0.1.
 * The keyring reaches the page as JSON over HTTP and goes through clusterFromJson /
 * clientKeyFromJson. Scenarios: put/get/cas/del; the loaders' coded errors; one replica signing
 * wrong results (filtered, reported as 'faulty-reply' evidence); every replica lying (QuorumFailure)
 * with the negative control: a client built to accept the first reply returns a forged value, so
 * the filter is what the other scenarios observe.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { Chromium, type Page } from './chromium.ts';
import { TestCluster } from './helpers.ts';

const PAGE_SCRIPT = fileURLToPath(new URL('./fixtures/browser-page.ts', import.meta.url));

let tc: TestCluster;
let server: http.Server;
let browser: Chromium | undefined;
let page: Page;
let bundleBytes = 0;

before(async () => {
  tc = await TestCluster.create({ name: 'browser', faults: true, clients: 2 });
  const bundle = await esbuild.build({
    entryPoints: [PAGE_SCRIPT],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  const js = bundle.outputFiles[0]!.contents;
  bundleBytes = js.length;
  const files = new Map<string, { type: string; body: Uint8Array | string }>([
    ['/', { type: 'text/html', body: '<!doctype html><meta charset="utf-8"><title>loading</title><script type="module" src="/page.js"></script>' }],
    ['/page.js', { type: 'text/javascript', body: js }],
    ['/keys/cluster.json', { type: 'application/json', body: readFileSync(join(tc.keysDir, 'cluster.json')) }],
    ['/keys/client-0.key', { type: 'application/json', body: readFileSync(join(tc.keysDir, 'client-0.key')) }],
    ['/keys/client-1.key', { type: 'application/json', body: readFileSync(join(tc.keysDir, 'client-1.key')) }],
  ]);
  server = http.createServer((req, res) => {
    const file = files.get(req.url ?? '');
    if (file === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-store' }).end(file.body);
  });
  // Port 0: the kernel picks a free port and it stays bound; nothing can take it in between.
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await tc.startAll();
  browser = await Chromium.launch();
  page = await browser.open(`http://127.0.0.1:${port}/`);
  await page.waitFor(`document.title === 'ready'`, 'the page script to load');
});

after(async () => {
  await page?.evaluate('pbft.close()').catch(() => undefined);
  await browser?.close();
  server?.close();
  await tc?.destroy();
});

test('the page runs in Chromium, not Node: no process, require or Buffer; the bundle has no externals', async () => {
  const env = await page.evaluate<Record<string, string>>('pbft.environment()');
  assert.match(env.userAgent!, /HeadlessChrome|Chrome/);
  assert.deepEqual({ process: env.process, require: env.require, Buffer: env.Buffer, WebSocket: env.WebSocket }, {
    process: 'undefined',
    require: 'undefined',
    Buffer: 'undefined',
    WebSocket: 'function',
  });
  assert.ok(bundleBytes > 0);
});

test('put, get, cas and del from the browser', async () => {
  const { out, connected } = await page.evaluate<{ out: unknown[]; connected: number[] }>('pbft.kv()');
  assert.deepEqual(out, [
    'red',
    { swapped: true, current: 'green' },
    { swapped: false, current: 'green' },
    'green',
    true,
    null,
  ]);
  assert.ok(connected.length >= 2, `connected to f+1 replicas or more: ${connected.join(', ')}`);
});

test('the JSON loaders reject a wrong cluster or key with coded errors', async () => {
  const out = await page.evaluate<Record<string, { name: string; code: string; reason?: string; message: string; isConfigError?: boolean }>>('pbft.badConfig()');
  for (const [name, reason] of [
    ['notObject', 'MALFORMED'],
    ['badPublicKey', 'MALFORMED'],
    ['keyMissingField', 'MALFORMED'],
    ['keyOfReplica', 'KEY_MISMATCH'],
    ['keyOtherCluster', 'KEY_MISMATCH'],
    ['keyNotListed', 'KEY_MISMATCH'],
  ] as const) {
    const e = out[name]!;
    assert.equal(e.code, 'BAD_CONFIG', `${name}: ${JSON.stringify(e)}`);
    assert.equal(e.reason, reason, `${name}: ${JSON.stringify(e)}`);
    assert.equal(e.isConfigError, true, name);
    assert.equal(e.name, 'ClientConfigError', name);
  }
  assert.match(out.badPublicKey!.message, /replicas\[0\]\.publicKey/);
  const keyJson = readFileSync(join(tc.keysDir, 'client-0.key'), 'utf8');
  const secret = (JSON.parse(keyJson) as { secretKey: string }).secretKey;
  for (const e of Object.values(out)) assert.ok(!JSON.stringify(e).includes(secret), 'no message contains the secret key');
  assert.equal(out.path!.code, 'BAD_CONFIG', 'a file path is refused in the browser');
  assert.match(out.path!.message, /clusterFromJson/);
});

test('a replica signing wrong results: the browser client gets the right values and reports its signed reply', async () => {
  tc.setFault(3, { mode: 'wrong-result', tag: 'browser' });
  const { out } = await page.evaluate<{ out: unknown[] }>(`pbft.ops('liar-')`);
  assert.deepEqual(out, ['v0', 'v1', 'v2', 'v3', { swapped: true, current: 'w0' }]);
  const evidence = await page.evaluate<{ replica: number; result: string }[]>('pbft.waitForEvidence(60000)');
  assert.ok(evidence.length > 0, 'faulty-reply evidence reached the page');
  for (const e of evidence) assert.deepEqual(e, { replica: 3, result: 'forged by replica 3 (browser)' });
  tc.setFault(3, { mode: 'none' });
});

test('every replica lying: QuorumFailure in the browser; a client that accepts the first reply returns a forgery (negative control)', async () => {
  for (const id of [0, 1, 2, 3]) tc.setFault(id, { mode: 'wrong-result', tag: 'all' });
  const failed = await page.evaluate<{ error?: { name: string; code: string }; replies?: number; value?: unknown }>(`pbft.getExpectingFailure('liar-1')`);
  assert.equal(failed.error?.code, 'QUORUM_FAILURE', JSON.stringify(failed));
  assert.equal(failed.error?.name, 'QuorumFailure');
  assert.equal(failed.replies, 4, 'it carries every reply');
  const broken = await page.evaluate<{ value: unknown }>(`pbft.getAcceptingFirstReply('liar-1')`);
  assert.match(String(broken.value), /^forged by replica [0-3] \(all\)$/, 'without the f+1 filter a lie is accepted');
  for (const id of [0, 1, 2, 3]) tc.setFault(id, { mode: 'none' });
  const after = await page.evaluate<{ value?: unknown }>(`pbft.getExpectingFailure('liar-1')`);
  assert.deepEqual(after, { value: 'v1' }, 'honest again, the cluster answers the stored value');
});
