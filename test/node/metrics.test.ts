/**
 * GET /metrics and GET /status of real replicas (four in-process ReplicaNodes on 127.0.0.1): the
 * README's /status table names exactly the fields served; the /metrics exposition passes a
 * strict Prometheus text parser (./prom-text.ts), keeps the families that were there before
 * prom-client, and has histograms with _bucket series for the request latency, the phases, the batch
 * size and the synced writes, with observations after a workload; process metrics (CPU, RSS,
 * event-loop lag, GC) are there. Also: the frame reader the metrics use, and the parser's strictness.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { PbftClient } from '../../src/client/client.ts';
import { encodeBatchedReplyFrame, encodeBody, encodeSignedFrame } from '../../src/codec/messages.ts';
import { peekAnswer, peekRequest, peekVote } from '../../src/node/frame-peek.ts';
import { InProcessCluster } from './inprocess-cluster.ts';
import { familyNamed, parsePrometheusText, type Family } from './prom-text.ts';

let ipc: InProcessCluster;
let client: PbftClient;

before(async () => {
  ipc = await InProcessCluster.create();
  client = await PbftClient.connect({ cluster: ipc.cluster, key: ipc.clientKey(0), timeoutMs: 60_000 });
});

after(async () => {
  await client?.close();
  await ipc?.stop();
});

async function scrape(id: number): Promise<Map<string, Family>> {
  const res = await fetch(`http://127.0.0.1:${ipc.ports[id]}/metrics`, { signal: AbortSignal.timeout(30_000) });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  return parsePrometheusText(await res.text());
}

/** The _count of a histogram's series whose labels include `labels`. */
function histogramCount(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const f = familyNamed(families, name, 'histogram');
  const buckets = f.samples.filter((s) => s.name === `${name}_bucket` && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(buckets.length > 1, `${name} ${JSON.stringify(labels)} has _bucket series`);
  assert.ok(buckets.some((b) => b.labels.le === '+Inf'), `${name} has a +Inf bucket`);
  const count = f.samples.find((s) => s.name === `${name}_count` && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(count !== undefined, `${name} ${JSON.stringify(labels)} has a _count`);
  return count.value;
}

/** Polls (generous bound) until `probe` holds; effects leave a replica after the client got f+1 replies. */
async function eventually(probe: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await probe())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('/metrics parses strictly and has latency, phase, batch and synced-write histograms with observations', async () => {
  for (let i = 0; i < 20; i++) await client.put(`k${i}`, `v${i}`);
  const HISTOGRAMS = ['pbft_storage_synced_write_duration_seconds', 'pbft_batch_size_requests', 'pbft_batch_size_bytes'];
  for (const id of [0, 1]) {
    await eventually(async () => {
      const m = await scrape(id);
      const phases = ['prepare', 'commit', 'execute'].map((phase) => histogramCount(m, 'pbft_phase_duration_seconds', { phase }));
      return [...phases, ...HISTOGRAMS.map((n) => histogramCount(m, n))].every((c) => c > 0);
    }, `replica ${id}: every histogram observed something`);
  }
  // The request latency of 20 sequential requests: each observed once, by the replica the client
  // sent it to (the primary it knows; a view change under load moves it, and a retransmission sends
  // to all). The client accepts on f+1 replies, so that replica's own reply may still be on its way.
  const requestCounts = async (): Promise<number[]> =>
    Promise.all([0, 1, 2, 3].map(async (id) => histogramCount(await scrape(id), 'pbft_request_duration_seconds')));
  await eventually(async () => (await requestCounts()).reduce((a, b) => a + b, 0) >= 20, 'the 20 requests observed where they arrived');
  let sum = 0;
  for (const id of [0, 1, 2, 3]) {
    sum += (await scrape(id)).get('pbft_request_duration_seconds')!.samples.find((s) => s.name === 'pbft_request_duration_seconds_sum')!.value;
  }
  assert.ok(sum > 0 && sum < 4 * 60, `latencies are in seconds (sum ${sum})`);
  const m = await scrape(0);
  // Batch sizes are requests: at least one per executed batch.
  const batches = m.get('pbft_batch_size_requests')!.samples;
  assert.equal(batches.find((s) => s.name === 'pbft_batch_size_requests_bucket' && s.labels.le === '0.5'), undefined, 'no bucket below one request');

  // The families that existed before (names and types unchanged).
  for (const [name, type] of [
    ['pbft_requests_executed_total', 'counter'],
    ['pbft_view', 'gauge'],
    ['pbft_last_executed_seq', 'gauge'],
    ['pbft_rejected_messages_total', 'counter'],
    ['pbft_peer_misbehaviour_total', 'counter'],
    ['pbft_transport_frames_received_total', 'counter'],
    ['pbft_storage_synced_writes_total', 'counter'],
    ['pbft_uptime_seconds', 'gauge'],
    // RocksDB's memory (0 here: these replicas run on MemoryStorage; test/unit/storage.compliance.test.ts reads it from RocksDB).
    ['pbft_storage_memtable_bytes', 'gauge'],
    ['pbft_storage_table_readers_bytes', 'gauge'],
    ['pbft_storage_block_cache_bytes', 'gauge'],
    ['pbft_storage_sst_bytes', 'gauge'],
    // RocksDB's tree and compactions (0 here, on MemoryStorage: storage.compliance.test.ts reads them from RocksDB).
    ['pbft_storage_level0_files', 'gauge'],
    ['pbft_storage_pending_compaction_bytes', 'gauge'],
    ['pbft_storage_running_compactions', 'gauge'],
    ['pbft_storage_compaction_written_bytes_total', 'counter'],
    ['pbft_storage_flush_written_bytes_total', 'counter'],
    ['pbft_storage_compaction_read_bytes_total', 'counter'],
    ['pbft_storage_compaction_seconds_total', 'counter'],
    ['pbft_storage_write_stalls_total', 'counter'],
    ['pbft_storage_write_stopped', 'gauge'],
  ] as const) {
    familyNamed(m, name, type);
  }
  assert.ok(familyNamed(m, 'pbft_requests_executed_total', 'counter').samples[0]!.value >= 20);
  assert.ok(familyNamed(m, 'pbft_crypto_verifies_total', 'counter').samples[0]!.value > 0);
  // Equivocation evidence: one series per kind, none held in a fault-free run.
  const evidence = familyNamed(m, 'pbft_equivocation_evidence_total', 'counter').samples;
  assert.deepEqual(evidence.map((x) => x.labels.kind).sort(), ['commit', 'mixed', 'prepare', 'preprepare']);
  assert.ok(evidence.every((x) => x.value === 0));

  // Process metrics: CPU, RSS, event-loop lag, GC.
  assert.ok(familyNamed(m, 'process_cpu_seconds_total', 'counter').samples[0]!.value > 0);
  assert.ok(familyNamed(m, 'process_resident_memory_bytes', 'gauge').samples[0]!.value > 1024 * 1024);
  familyNamed(m, 'nodejs_eventloop_lag_seconds', 'gauge');
  familyNamed(m, 'nodejs_eventloop_lag_p99_seconds', 'gauge');
  familyNamed(m, 'nodejs_gc_duration_seconds', 'histogram');
  // Units last: every family of ours that measures time or size says so.
  for (const name of m.keys()) {
    if (/duration|latency|_time_|uptime/.test(name)) assert.match(name, /_seconds(_total)?$/, `${name} names its unit`);
  }
});

test('the frame reader finds kind, view, seq, client and timestamp in real frames', () => {
  const sig = new Uint8Array(64);
  const ts = Date.now() * 1000 + 7; // above 2^32: cbor-x writes it as a float64
  const request = encodeSignedFrame({ body: encodeBody({ type: 'request', client: 3, timestamp: ts, op: new Uint8Array(100) }), sig } as never);
  assert.deepEqual(peekRequest(request), { client: 3, timestamp: ts });
  assert.equal(peekVote(request), undefined);
  const digest = new Uint8Array(32);
  for (const [type, tag] of [['preprepare', 3], ['prepare', 4], ['commit', 5]] as const) {
    const frame = encodeSignedFrame({ body: encodeBody({ type, view: 2, seq: 70_000, digest, replica: 1 } as never), sig } as never);
    assert.deepEqual(peekVote(frame), { tag, view: 2, seq: 70_000 });
    assert.equal(peekRequest(frame), undefined);
  }
  const reply = { type: 'reply', view: 0, client: 5, timestamp: ts, replica: 2, result: new Uint8Array(3) } as const;
  assert.deepEqual(peekAnswer(encodeSignedFrame({ body: encodeBody(reply), sig } as never)), { client: 5, timestamp: ts });
  const batchBody = encodeBody({ type: 'replybatch', view: 0, replica: 2, seq: 9, count: 2, root: digest });
  const batched = encodeBatchedReplyFrame({ msg: reply, batch: { body: batchBody, sig } as never, index: 1, path: [digest] });
  assert.deepEqual(peekAnswer(batched), { client: 5, timestamp: ts });
  const refusal = encodeBody({ type: 'refusal', replica: 1, client: 6, timestamp: 12, digest, reason: 'op-too-large', limit: 10 } as never);
  assert.deepEqual(peekAnswer(encodeSignedFrame({ body: refusal, sig } as never)), { client: 6, timestamp: 12 });
  for (const junk of [new Uint8Array(0), new Uint8Array([0x83]), new Uint8Array([0xff, 1, 2]), request.subarray(0, 10)]) {
    assert.equal(peekVote(junk), undefined);
    assert.equal(peekRequest(junk), undefined);
    assert.equal(peekAnswer(junk), undefined);
  }
});

test('the Prometheus text parser is strict', () => {
  const ok = '# HELP a_seconds A.\n# TYPE a_seconds histogram\na_seconds_bucket{le="0.1"} 1\na_seconds_bucket{le="+Inf"} 2\na_seconds_sum 0.3\na_seconds_count 2\n';
  assert.equal(parsePrometheusText(ok).get('a_seconds')!.samples.length, 4);
  const bad: Array<[string, string]> = [
    [ok.replace('a_seconds_count 2', 'a_seconds_count 3'), 'differs from the +Inf bucket'],
    [ok.replace('{le="+Inf"} 2', '{le="+Inf"} 0'), 'counts decrease'],
    [ok.replace('a_seconds_bucket{le="+Inf"} 2\n', ''), 'no +Inf'],
    [ok.replace('\na_seconds_sum 0.3', ''), '_sum missing'],
    [ok + '# TYPE a_seconds histogram\n', 'TYPE for a_seconds'],
    ['# TYPE c counter\nc 1\n# TYPE d gauge\nd 1\n# HELP c C.\n', 'after its samples ended'],
    ['# TYPE c counter\nc 1\nc 2\n', 'twice'],
    ['# TYPE c counter\nc -1\n', 'counter c is -1'],
    ['# TYPE c counter\nc{a="\\x"} 1\n', 'bad escape'],
    ['# TYPE c counter\nc one\n', 'bad value'],
    ['# TYPE c counter\nc 1\n# TYPE d gauge\nd 1\nc{x="1"} 2\n', 'not contiguous'],
    ['# TYPE c counter\nc 1', 'newline'],
    ['# TYPE c countr\nc 1\n', 'unknown type'],
  ];
  for (const [text, why] of bad) assert.throws(() => parsePrometheusText(text), (err: Error) => err.message.includes(why), why);
});

test("README's /status table names exactly the fields a replica's /status has", async () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('### GET /status');
  assert.ok(start >= 0, 'README has a GET /status section');
  const section = readme.slice(start, readme.indexOf('\n#', start + 1));
  const documented = new Map<string, boolean>();
  for (const m of section.matchAll(/^\| `([A-Za-z]+)` \| (.*) \|$/gm)) documented.set(m[1]!, /^only while/.test(m[2]!));
  assert.ok(documented.size > 20, `the table was found (${documented.size} rows)`);
  for (const id of [0, 1]) {
    const status = (await (await fetch(`http://127.0.0.1:${ipc.ports[id]}/status`)).json()) as Record<string, unknown>;
    const served = Object.keys(status);
    for (const field of served) assert.ok(documented.has(field), `/status field ${field} is in README's table`);
    for (const [field, optional] of documented) {
      if (!optional) assert.ok(served.includes(field), `README's /status field ${field} is served`);
    }
    assert.equal(status.clusterId, ipc.cluster.clusterId);
    assert.equal(status.id, id);
  }
  assert.doesNotMatch(readme, /[^A-Za-z]uptime[^S]/, 'no field named uptime (it is uptimeSeconds)');
});
