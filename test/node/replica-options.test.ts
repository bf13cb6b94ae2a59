/**
 * Options of a ReplicaNode that the CLI checks too, refused by the node itself for a program that
 * builds one directly: a ReplicaNodeError with code BAD_OPTIONS naming the option, before anything
 * is created on disk.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ReplicaNode, ReplicaNodeError } from '../../src/node/replica-node.ts';
import { silentLogger } from '../../src/util/log.ts';
import { TestCluster } from '../paper/harness.ts';

test('a RocksDB write buffer out of bounds is a BAD_OPTIONS error naming it, and no data directory is made', () => {
  const k = new TestCluster({ real: true, clients: 1 });
  const dir = mkdtempSync(join(tmpdir(), 'pbft-options-'));
  try {
    for (const writeBufferBytes of [0, 512 * 1024, 2 ** 31, 1.5]) {
      const dataDir = join(dir, `data-${writeBufferBytes}`);
      assert.throws(
        () => new ReplicaNode({ cluster: k.cluster, id: 0, secretKey: k.replicaSecretKeys[0]!, dataDir, log: silentLogger, replica: k.options, writeBufferBytes }),
        (err: unknown) => err instanceof ReplicaNodeError && err.code === 'BAD_OPTIONS' && /writeBufferBytes must be an integer in 1048576\.\.1073741824/.test(err.message),
      );
      assert.equal(existsSync(dataDir), false);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
