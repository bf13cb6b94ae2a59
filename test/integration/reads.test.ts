/**
 * Read-only requests on real replica processes (src/core/reads.ts, the SDK's get):
 * - With one byzantine replica serving stale state on reads (the fixture's stale-reads fault: it
 *   answers from a copy of its state taken earlier, validly signed, while it orders honestly), a
 *   read started after a write completed returns the written value: by another client, while all
 *   replicas run (the fast path: the three correct replicas agree) and while a correct replica is
 *   stopped (the stale replica is then needed for any quorum: the read falls back to an ordered one).
 * - Replicas that disagree because a write is executing concurrently make the SDK fall back to an
 *   ordered read; every read stays linearizable (src/check/linearizability.ts).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkLinearizable, formatViolation, History } from '../../src/check/linearizability.ts';
import type { ReadFallback } from '../../src/client/client.ts';
import { STALE_READS_LINE, STALE_READ_SERVED_LINE } from './fixtures/faults.ts';
import { TestCluster, waitFor } from './helpers.ts';

let tc: TestCluster;

before(async () => {
  tc = await TestCluster.create({ name: 'reads', faults: true });
  await tc.startAll();
});

after(async () => {
  await tc?.destroy();
});

const servedStale = (): number => tc.output(3).split('\n').filter((l) => l === STALE_READ_SERVED_LINE).length;

async function allExecuted(seq: number): Promise<void> {
  await waitFor(async () => {
    const all = await Promise.all([0, 1, 2, 3].map((id) => tc.tryStatus(id)));
    return all.every((s) => s !== undefined && s.lastExecuted >= seq);
  }, `every replica to execute seq ${seq}`);
}

test('a read started after a write completed returns the new value, though a byzantine replica serves stale state', async () => {
  const writer = await tc.client(0, { timeoutMs: 20_000 });
  const reader = await tc.client(1, { timeoutMs: 20_000, readTimeoutMs: 400 });
  await waitFor(() => reader.connectedReplicas().length === 4, 'the reader to connect to every replica');
  const fallbacks: ReadFallback[] = [];
  reader.on('read-fallback', (f) => fallbacks.push(f));
  const history = new History(() => performance.now());

  await writer.put('k', 'v0');
  const { lastExecuted } = await tc.status(0);
  await allExecuted(lastExecuted);
  tc.setFault(3, { mode: 'stale-reads', tag: 'after-v0' });
  await waitFor(() => tc.output(3).includes(STALE_READS_LINE), 'replica 3 to freeze its copy of the state');

  const round = async (i: number): Promise<void> => {
    const value = `v${i}`;
    const w = history.invoke('writer', 'k', { type: 'put', value });
    await writer.put('k', value);
    w.ok(undefined);
    // Started after the put returned, by another client: it must see `value` (nothing else writes k).
    const r = history.invoke('reader', 'k', { type: 'get' });
    const got = await reader.get('k');
    r.ok(got as string | null);
    assert.equal(got, value, `round ${i}`);
  };

  // Every replica up: the three correct ones agree on the new value, replica 3 says v0.
  for (let i = 1; i <= 15; i++) await round(i);
  const fast = reader.readStats.unordered;
  assert.ok(fast >= 10, `reads answered unordered with every replica up: ${JSON.stringify(reader.readStats)}`);
  assert.ok(servedStale() >= 10, `replica 3 answered reads from its stale copy: ${servedStale()}`);

  // A correct replica stopped: any 2f+1 answers include replica 3's stale one, so no read can be
  // answered unordered; each falls back to an ordered read, which returns the new value. (A read of
  // the rounds above may have fallen back too, on a loaded machine: a correct replica later than
  // readTimeoutMs. Only the fallbacks from here on are counted.)
  const fallbacksBefore = fallbacks.length;
  tc.procs[2]!.proc.kill('SIGSTOP');
  try {
    for (let i = 16; i <= 20; i++) await round(i);
  } finally {
    tc.procs[2]!.proc.kill('SIGCONT');
  }
  assert.equal(reader.readStats.unordered, fast, 'no read was answered unordered while replica 2 was stopped');
  assert.equal(fallbacks.length - fallbacksBefore, 5, `each of the 5 reads with replica 2 stopped fell back (${fallbacksBefore} before)`);
  assert.ok(fallbacks.every((f) => f.reason === 'timeout' || f.reason === 'disagreement'), JSON.stringify(fallbacks));

  const verdict = checkLinearizable(history.ops());
  assert.ok(verdict.ok, formatViolation(verdict));
  tc.setFault(3, { mode: 'none' });
});

test('replicas that disagree because of a concurrent write make the SDK fall back to an ordered read', async () => {
  tc.setFault(3, { mode: 'none' });
  const writer = await tc.client(2, { timeoutMs: 20_000 });
  const reader = await tc.client(3, { timeoutMs: 20_000 });
  await waitFor(() => reader.connectedReplicas().length === 4, 'the reader to connect to every replica');
  const disagreements: ReadFallback[] = [];
  reader.on('read-fallback', (f) => {
    if (f.reason === 'disagreement') disagreements.push(f);
  });
  const history = new History(() => performance.now());
  let writing = true;
  let written = 0;
  const writes = (async () => {
    while (writing) {
      const value = `w${written++}`;
      const h = history.invoke('writer', 'c', { type: 'put', value });
      try {
        await writer.put('c', value);
        h.ok(undefined);
      } catch (err) {
        h.error(err);
      }
    }
  })();
  let reads = 0;
  const deadline = Date.now() + 60_000;
  try {
    while (disagreements.length < 3 && Date.now() < deadline) {
      const h = history.invoke('reader', 'c', { type: 'get' });
      h.ok((await reader.get('c')) as string | null);
      reads++;
    }
  } finally {
    writing = false;
    await writes;
  }
  assert.ok(disagreements.length >= 1, `no read fell back for disagreement in ${reads} reads during ${written} writes`);
  for (const d of disagreements) assert.ok(d.answered.length + d.refused.length >= 2, JSON.stringify(d));
  const verdict = checkLinearizable(history.ops());
  assert.ok(verdict.ok, formatViolation(verdict));
  // Reads were answered both ways: unordered (between writes) and ordered (the fallbacks).
  assert.ok(reader.readStats.fellBack >= disagreements.length);
  console.log(`# ${reads} reads during ${written} writes: ${reader.readStats.unordered} unordered, ${reader.readStats.fellBack} fell back (${disagreements.length} for disagreement)`);
});
