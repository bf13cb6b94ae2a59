/**
 * The state-transfer checks (src/core/transfer.ts) and the digest tree they rely on: every piece a
 * peer serves is checked against the certified checkpoint digest, and a request for leaves sends
 * only 4-byte prefixes of the asker's own leaves so that the peer returns the differing ones.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sha256 } from '../../src/crypto/node.ts';
import { groupDigest, leafDigest, StateTree, stateDigest } from '../../src/core/statetree.ts';
import {
  checkGroupLeaves,
  checkMeta,
  differingGroups,
  differingPositions,
  LEAF_PREFIX_BYTES,
  leafPrefixes,
  mergeLeaves,
  packPartitions,
  partitionMatches,
  unpackPartitions,
} from '../../src/core/transfer.ts';
import type { CheckpointCert } from '../../src/core/messages.ts';

const PARTITIONS = 64; // groups of 8
const enc = new TextEncoder();

function partitions(tag: string, changed: number[] = []): Uint8Array[] {
  return Array.from({ length: PARTITIONS }, (_, i) => enc.encode(`${changed.includes(i) ? tag : 'base'}-${i}`));
}

const MEMBERSHIP = new Uint8Array([9, 9]);

function certFor(tree: StateTree, clients: Uint8Array): CheckpointCert {
  return { epoch: 0, seq: 64, digest: stateDigest(sha256, tree.root, clients, MEMBERSHIP), proof: [] };
}

test('the digest tree: groups of sqrt(n) leaves, one changed partition changes exactly one group', () => {
  const a = StateTree.fromPartitions(sha256, partitions('x'));
  const b = StateTree.fromPartitions(sha256, partitions('y', [13]));
  assert.equal(a.groupSize, 8);
  assert.equal(a.groupCount, 8);
  assert.deepEqual(differingGroups(b.groups, a), [1]);
  assert.notDeepEqual(a.root, b.root);
});

test('the digest tree from partitions: a partition equal to the one before it gets the same leaf, as its own copy', () => {
  const a = Uint8Array.of(1, 2, 3);
  const parts = [a, a, Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2, 4), Uint8Array.of(1, 2), new Uint8Array(0), new Uint8Array(0), a];
  const tree = StateTree.fromPartitions(sha256, parts);
  const leaves = tree.leaves.toArray();
  parts.forEach((p, i) => assert.deepEqual(leaves[i], leafDigest(sha256, p), `leaf ${i}`));
  assert.equal(new Set(leaves).size, parts.length, 'no two leaves are the same array');
  assert.deepEqual(tree.root, new StateTree(sha256, parts.length, parts.map((p) => leafDigest(sha256, p))).root);
});

test('meta: group digests, client table and membership are accepted only when they hash to the certified digest', () => {
  const tree = StateTree.fromPartitions(sha256, partitions('x'));
  const clients = new Uint8Array([1, 2, 3]);
  const cert = certFor(tree, clients);
  assert.equal(checkMeta(sha256, PARTITIONS, cert, tree.groups, clients, MEMBERSHIP), undefined);
  assert.match(checkMeta(sha256, PARTITIONS, cert, tree.groups, clients, new Uint8Array([9])) ?? '', /does not match/);
  const wrongGroup = tree.groups.map((g, i) => (i === 2 ? sha256(g) : g));
  assert.match(checkMeta(sha256, PARTITIONS, cert, wrongGroup, clients, MEMBERSHIP) ?? '', /does not match/);
  assert.match(checkMeta(sha256, PARTITIONS, cert, tree.groups, new Uint8Array([1, 2]), MEMBERSHIP) ?? '', /does not match/);
  assert.match(checkMeta(sha256, PARTITIONS, cert, tree.groups.slice(1), clients, MEMBERSHIP) ?? '', /number of groups/);
});

test('leaves: a group is accepted only when its leaves hash to its certified group digest', () => {
  const tree = StateTree.fromPartitions(sha256, partitions('x'));
  assert.equal(checkGroupLeaves(sha256, PARTITIONS, 3, tree.groupLeaves(3), tree.groups[3]!), undefined);
  const swapped = tree.groupLeaves(3).reverse();
  assert.match(checkGroupLeaves(sha256, PARTITIONS, 3, swapped, tree.groups[3]!) ?? '', /do not match/);
  assert.match(checkGroupLeaves(sha256, PARTITIONS, 3, tree.groupLeaves(3).slice(1), tree.groups[3]!) ?? '', /wrong count/);
});

test('sparse leaves: the peer returns only the leaves whose prefix differs from the asker, and the merge restores the group', () => {
  const own = StateTree.fromPartitions(sha256, partitions('old', [17, 20]));
  const certified = StateTree.fromPartitions(sha256, partitions('new', [17, 20, 22]));
  const group = 2; // partitions 16..23
  const have = leafPrefixes(own.groupLeaves(group));
  assert.equal(have.length, 8 * LEAF_PREFIX_BYTES);
  const served = certified.groupLeaves(group);
  const positions = differingPositions(served, have);
  assert.deepEqual(positions, [1, 4, 6]);
  const merged = mergeLeaves(
    own.groupLeaves(group),
    positions.map((k) => served[k]!),
    positions,
  );
  assert.ok(merged);
  assert.equal(checkGroupLeaves(sha256, PARTITIONS, group, merged, certified.groups[group]!), undefined);
  assert.deepEqual(merged, served);
});

test('sparse leaves: a peer that claims nothing differs, or misplaces a leaf, fails the group digest check', () => {
  const own = StateTree.fromPartitions(sha256, partitions('old'));
  const certified = StateTree.fromPartitions(sha256, partitions('new', [9]));
  const served = certified.groupLeaves(1);
  const none = mergeLeaves(own.groupLeaves(1), [], []);
  assert.match(checkGroupLeaves(sha256, PARTITIONS, 1, none!, certified.groups[1]!) ?? '', /do not match/);
  const misplaced = mergeLeaves(own.groupLeaves(1), [served[1]!], [2]);
  assert.match(checkGroupLeaves(sha256, PARTITIONS, 1, misplaced!, certified.groups[1]!) ?? '', /do not match/);
});

test('sparse leaves: malformed positions are refused before any hashing', () => {
  const own = StateTree.fromPartitions(sha256, partitions('x')).groupLeaves(0);
  const leaf = leafDigest(sha256, enc.encode('z'));
  assert.equal(mergeLeaves(own, [leaf, leaf], [3, 3]), undefined, 'repeated position');
  assert.equal(mergeLeaves(own, [leaf, leaf], [4, 2]), undefined, 'not increasing');
  assert.equal(mergeLeaves(own, [leaf], [8]), undefined, 'out of the group');
  assert.equal(mergeLeaves(own, [leaf], []), undefined, 'one position per leaf');
});

test('sparse leaves: a prefix string of the wrong size gets every leaf back', () => {
  const leaves = StateTree.fromPartitions(sha256, partitions('x')).groupLeaves(0);
  assert.deepEqual(differingPositions(leaves, new Uint8Array(3)), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(differingPositions(leaves, leafPrefixes(leaves)), []);
});

test('partitions: packed and unpacked exactly, checked one by one against their leaf digests', () => {
  const parts = partitions('x').slice(0, 5);
  parts.push(new Uint8Array(0));
  const packed = packPartitions(parts);
  assert.deepEqual(unpackPartitions(packed, parts.length), parts);
  assert.equal(unpackPartitions(packed, parts.length + 1), undefined, 'count too high');
  assert.equal(unpackPartitions(packed.subarray(0, packed.length - 1), parts.length), undefined, 'truncated');
  assert.equal(unpackPartitions(packed, parts.length - 1), undefined, 'trailing bytes');
  assert.ok(partitionMatches(sha256, parts[2]!, leafDigest(sha256, parts[2]!)));
  assert.ok(!partitionMatches(sha256, parts[3]!, leafDigest(sha256, parts[2]!)));
  assert.notDeepEqual(groupDigest(sha256, [leafDigest(sha256, parts[0]!)]), leafDigest(sha256, parts[0]!), 'domain-separated');
});

test('leafDigest is H(0x00 || partition) at every size, across the reused preimage buffer growing and the large-partition path', () => {
  const sizes = [0, 1, 4095, 4096, 5000, 70_000, 1 << 20, (1 << 20) + 5, 3000];
  for (const n of sizes) {
    const bytes = new Uint8Array(n);
    for (let i = 0; i < n; i++) bytes[i] = (i * 31 + n) & 0xff;
    const preimage = new Uint8Array(1 + n);
    preimage.set(bytes, 1);
    assert.deepEqual(leafDigest(sha256, bytes), sha256(preimage), `size ${n}`);
  }
  // A digest is not a view into the reused buffer: the next leaf leaves it unchanged.
  const first = leafDigest(sha256, Uint8Array.of(1, 2, 3));
  const copy = first.slice();
  leafDigest(sha256, Uint8Array.of(9, 9, 9));
  assert.deepEqual(first, copy);
});

test('the digest tree kept incrementally (group preimages updated in place, shared with clones until written) equals the tree computed from its leaves: random leaf changes, clones written on both sides, leaves of another length', () => {
  // 100 partitions: groups of 16, the last one short (4 leaves).
  const n = 100;
  let state = 20261205;
  const rand = (k: number): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return (state >>> 8) % k;
  };
  const leafOf = (tag: string): Uint8Array => sha256(enc.encode(tag));
  const check = (tree: StateTree, what: string): void => {
    tree.commit();
    for (let j = 0; j < tree.groupCount; j++) assert.deepEqual(tree.groups[j], groupDigest(sha256, tree.groupLeaves(j)), `${what}: group ${j}`);
    assert.deepEqual(tree.root, new StateTree(sha256, n, tree.leaves.toArray()).root, `${what}: root`);
  };
  const trees: StateTree[] = [new StateTree(sha256, n, Array.from({ length: n }, (_, i) => leafOf(`start-${i}`)))];
  for (let step = 0; step < 400; step++) {
    const t = trees[rand(trees.length)]!;
    const r = rand(20);
    if (r === 0 && trees.length < 6) {
      trees.push(t.clone());
    } else {
      const i = rand(n);
      // Now and then a leaf of another length (its group is then assembled from its leaves).
      t.setLeaf(i, r === 1 ? enc.encode(`short-${step}`) : leafOf(`step-${step}`));
    }
    if (rand(4) === 0) for (const [k, tree] of trees.entries()) check(tree, `step ${step}, tree ${k}`);
  }
  for (const [k, tree] of trees.entries()) check(tree, `the end, tree ${k}`);
  assert.ok(trees.length >= 3, 'clones were made');
});
