/**
 * The browser SDK's keyring loaders (src/client/config.ts) on Node: clusterFromJson and
 * clientKeyFromJson accept what keygen writes and refuse anything else with ClientConfigError
 * (code BAD_CONFIG, a reason), never quoting the secret key. The same scenarios run in Chromium in
 * test/integration/browser.test.ts; this file catches a regression without a browser.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientKeyFromJson, clusterFromJson } from '../../src/client/config.ts';
import { ClientConfigError } from '../../src/client/errors.ts';
import { generateKeyring } from '../../src/crypto/keyring.ts';

const dir = mkdtempSync(join(tmpdir(), 'pbft-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const { cluster } = generateKeyring({ replicas: 4, clients: 2, out: dir, clusterId: 'config-test' });
const read = (name: string): Record<string, unknown> => JSON.parse(readFileSync(join(dir, name), 'utf8')) as Record<string, unknown>;
const clusterJson = read('cluster.json');
const keyJson = read('client-1.key');

function refused(fn: () => unknown, reason: string, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ClientConfigError, String(err));
    assert.equal(err.code, 'BAD_CONFIG');
    assert.equal(err.reason, reason, err.message);
    if (message !== undefined) assert.match(err.message, message);
    assert.ok(!err.message.includes(String(keyJson.secretKey)), 'the message does not contain the secret');
    return true;
  });
}

test('what keygen writes loads: the cluster equals the generated one, the key is client 1', () => {
  assert.deepEqual(clusterFromJson(clusterJson), cluster);
  const key = clientKeyFromJson(keyJson, cluster);
  assert.equal(key.id, 1);
  assert.equal(Buffer.from(key.secretKey).toString('hex'), keyJson.secretKey);
});

test('a malformed cluster is refused with MALFORMED, naming the field', () => {
  refused(() => clusterFromJson(null), 'MALFORMED');
  refused(() => clusterFromJson({ ...clusterJson, f: 2 }), 'MALFORMED', /needs n = 3f\+1 = 7 replicas/);
  refused(() => clusterFromJson({ ...clusterJson, extra: 1 }), 'MALFORMED', /unknown field "extra"/);
  const replicas = clusterJson.replicas as Record<string, unknown>[];
  refused(() => clusterFromJson({ ...clusterJson, replicas: replicas.map((r, i) => (i === 2 ? { ...r, url: 'http://x:1' } : r)) }), 'MALFORMED', /replicas\[2\]\.url/);
});

test('a wrong key is refused: MALFORMED for its shape, KEY_MISMATCH when it is not this cluster\'s client key', () => {
  refused(() => clientKeyFromJson('key', cluster), 'MALFORMED');
  refused(() => clientKeyFromJson({ ...keyJson, secretKey: 'ab' }, cluster), 'MALFORMED', /secretKey must be 64 hex characters/);
  refused(() => clientKeyFromJson({ ...keyJson, publicKey: read('client-0.key').publicKey }, cluster), 'KEY_MISMATCH', /not the key derived from secretKey/);
  refused(() => clientKeyFromJson({ ...keyJson, principal: 'replica' }, cluster), 'KEY_MISMATCH', /expected client 1/);
  refused(() => clientKeyFromJson({ ...keyJson, id: 0 }, cluster), 'KEY_MISMATCH', /differs from the cluster keyring's entry for client 0/);
  refused(() => clientKeyFromJson({ ...keyJson, id: 7 }, cluster), 'KEY_MISMATCH', /not in the cluster keyring/);
  refused(() => clientKeyFromJson({ ...keyJson, clusterId: 'other' }, cluster), 'KEY_MISMATCH', /belongs to cluster "other"/);
});
