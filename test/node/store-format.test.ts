/**
 * A replica process's data directory names the layout of the key-value state it holds
 * (checkStoreFormat in src/node/replica-node.ts): a new one is marked, one written with another
 * partition count (or before the mark existed: 4,096 partitions) is refused with a message; one of
 * an older layout (whole partitions, before per-key records; records under their partition, before
 * records keyed by checkpoint) is read and marked with the current format.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkStoreFormat, NODE_PARTITION_COUNT, STORE_FORMAT } from '../../src/node/replica-node.ts';
import { MemoryStorage } from '../../src/storage/memory.ts';
import { KEYS } from '../../src/core/persist.ts';

test('a new data directory is marked with the partition count, and accepted again', async () => {
  const s = new MemoryStorage();
  await s.open();
  await checkStoreFormat(s);
  assert.equal(new TextDecoder().decode(await s.get('n/app-format')), `kv/partitions=${NODE_PARTITION_COUNT}/records-by-checkpoint`);
  assert.equal(STORE_FORMAT, `kv/partitions=${NODE_PARTITION_COUNT}/records-by-checkpoint`);
  await checkStoreFormat(s);
});

for (const [older, what] of [
  [`kv/partitions=${NODE_PARTITION_COUNT}`, 'whole partitions (the format before per-key records)'],
  [`kv/partitions=${NODE_PARTITION_COUNT}/records`, 'records under their partition (the format before records keyed by checkpoint)'],
]) {
  test(`a directory of ${what} is accepted and marked with the current format`, async () => {
    const s = new MemoryStorage();
    await s.open();
    await s.write([{ type: 'put', key: 'n/app-format', value: new TextEncoder().encode(older!) }], { sync: true });
    await checkStoreFormat(s);
    assert.equal(new TextDecoder().decode(await s.get('n/app-format')), STORE_FORMAT, 'an earlier version now refuses it with a message');
    await checkStoreFormat(s);
  });
}

test('state written before the mark existed (4,096 partitions) is refused with a message', async () => {
  const s = new MemoryStorage();
  await s.open();
  await s.write([{ type: 'put', key: KEYS.checkpointState, value: Uint8Array.of(1) }], { sync: true });
  await assert.rejects(checkStoreFormat(s), /written by an older version \(4096 partitions\).*empty data directory/);
});

test('another format is refused with a message naming both', async () => {
  const s = new MemoryStorage();
  await s.open();
  await s.write([{ type: 'put', key: 'n/app-format', value: new TextEncoder().encode('kv/partitions=4096') }], { sync: true });
  await assert.rejects(checkStoreFormat(s), /format "kv\/partitions=4096", this version reads "kv\/partitions=65536\/records-by-checkpoint"/);
});
