/**
 * The dashboard's aggregation (src/dashboard/model.ts) on made-up rounds: throughput from executed
 * counts (a restart is not a negative rate), latency from histogram deltas (mean and interpolated
 * p99), the cluster's view, primary and state, roles of live and dead replicas, view changes
 * reported by replicas and observed as views that moved, rejected counts over the last minute,
 * evidence merged across observers, and bounded memory (ring buffers, the history window).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DashboardModel,
  histogramDelta,
  histogramQuantile,
  histogramSum,
  metricsHistograms,
  parseHistogram,
  replicaState,
  Ring,
  VIEW_CHANGES_MAX,
  type Histogram,
  type ReplicaInput,
  type RoundInput,
} from '../../src/dashboard/model.ts';

const T0 = 1_800_000_000_000;
const BOUNDS = [0.001, 0.01, 0.1, Infinity];

function hist(perBucket: number[], sumSeconds: number): Histogram {
  let c = 0;
  const buckets = BOUNDS.map((le, i): [number, number] => [le, (c += perBucket[i] ?? 0)]);
  return { count: c, sumSeconds, buckets };
}

interface Fake {
  view?: number;
  primary?: number;
  status?: string;
  executed?: number;
  pid?: number;
  rejected?: Record<string, number>;
  request?: Histogram;
  viewChangeHistory?: unknown[];
  misbehaviourHistory?: unknown[];
  misbehaviour?: Record<string, number>;
  divergences?: number;
  evidence?: unknown;
  down?: boolean;
}

function replica(id: number, f: Fake): ReplicaInput {
  if (f.down === true) return { replica: id, url: `ws://127.0.0.1:${7001 + id}`, reachable: false, error: 'ECONNREFUSED' };
  return {
    replica: id,
    url: `ws://127.0.0.1:${7001 + id}`,
    reachable: true,
    status: {
      id,
      pid: f.pid ?? 100 + id,
      view: f.view ?? 0,
      primary: f.primary ?? 0,
      status: f.status ?? 'normal',
      viewChanging: f.status === 'view-change',
      lastExecuted: 10,
      stableCheckpoint: { seq: 0, digest: 'aa' },
      lastCheckpoint: { seq: 0, digest: 'aa' },
      epoch: 0,
      members: [0, 1, 2, 3],
      member: true,
      counters: { requestsExecuted: f.executed ?? 0 },
      rejected: f.rejected ?? {},
      misbehaviour: f.misbehaviour ?? {},
      divergences: f.divergences ?? 0,
      viewChangeHistory: f.viewChangeHistory ?? [],
      misbehaviourHistory: f.misbehaviourHistory ?? [],
      transport: { replicasConnected: [1, 2, 3], clientsConnected: 2 },
      ...(f.evidence !== undefined ? { evidence: f.evidence } : {}),
    },
    ...(f.request !== undefined ? { metrics: { request: f.request } } : {}),
  };
}

function round(fakes: Fake[]): RoundInput {
  const replicas = fakes.map((f, id) => replica(id, f));
  return { replicas, epoch: 0, members: [0, 1, 2, 3], n: 4, f: 1, quorum: 3, up: replicas.filter((r) => r.reachable).length };
}

const same = (f: Fake): Fake[] => [0, 1, 2, 3].map(() => ({ ...f }));

test('parseHistogram reads one histogram (with or without labels) from Prometheus text; metricsHistograms the three the dashboard uses', () => {
  const text = [
    '# HELP pbft_request_duration_seconds x',
    '# TYPE pbft_request_duration_seconds histogram',
    'pbft_request_duration_seconds_bucket{le="0.001"} 2',
    'pbft_request_duration_seconds_bucket{le="0.01"} 5',
    'pbft_request_duration_seconds_bucket{le="+Inf"} 6',
    'pbft_request_duration_seconds_sum 0.5',
    'pbft_request_duration_seconds_count 6',
    'pbft_request_duration_seconds_other 9',
    'pbft_phase_duration_seconds_bucket{le="0.01",phase="prepare"} 3',
    'pbft_phase_duration_seconds_bucket{le="+Inf",phase="prepare"} 4',
    'pbft_phase_duration_seconds_sum{phase="prepare"} 0.02',
    'pbft_phase_duration_seconds_count{phase="prepare"} 4',
    'pbft_phase_duration_seconds_bucket{phase="commit",le="+Inf"} 4',
    'pbft_phase_duration_seconds_sum{phase="commit"} 0.04',
    'pbft_phase_duration_seconds_count{phase="commit"} 4',
  ].join('\n');
  assert.deepEqual(parseHistogram(text, 'pbft_request_duration_seconds'), { count: 6, sumSeconds: 0.5, buckets: [[0.001, 2], [0.01, 5], [Infinity, 6]] });
  assert.deepEqual(parseHistogram(text, 'pbft_phase_duration_seconds', { phase: 'prepare' }), { count: 4, sumSeconds: 0.02, buckets: [[0.01, 3], [Infinity, 4]] });
  assert.equal(parseHistogram(text, 'pbft_phase_duration_seconds'), undefined, 'no unlabelled series of that name');
  assert.equal(parseHistogram(text, 'pbft_missing_seconds'), undefined);
  assert.equal(parseHistogram('pbft_x_bucket{le="1"} 1\npbft_x_sum NaN\npbft_x_count 1', 'pbft_x'), undefined, 'NaN is malformed');
  const all = metricsHistograms(text);
  assert.equal(all.request?.count, 6);
  assert.equal(all.prepare?.sumSeconds, 0.02);
  assert.deepEqual(all.commit?.buckets, [[Infinity, 4]]);
});

test('histogram deltas, sums and quantiles (linear within a bucket, as histogram_quantile)', () => {
  const a = hist([2, 2, 0, 0], 0.01);
  const b = hist([2, 10, 8, 0], 0.5);
  const d = histogramDelta(a, b)!;
  assert.deepEqual(d, { count: 16, sumSeconds: 0.49, buckets: [[0.001, 0], [0.01, 8], [0.1, 16], [Infinity, 16]] });
  assert.equal(histogramDelta(b, a), undefined, 'a histogram that went backwards (a restart) has no delta');
  // rank 0.5 * 16 = 8: the end of the (0.001, 0.01] bucket.
  assert.equal(histogramQuantile(d, 0.5), 0.01);
  // rank 0.99 * 16 = 15.84: in (0.01, 0.1], 7.84 of its 8.
  assert.ok(Math.abs(histogramQuantile(d, 0.99)! - (0.01 + 0.09 * (7.84 / 8))) < 1e-12);
  assert.equal(histogramQuantile(hist([0, 0, 0, 3], 9), 0.99), 0.1, 'in the +Inf bucket: the highest finite bound');
  assert.equal(histogramQuantile(hist([0, 0, 0, 0], 0), 0.5), undefined);
  const s = histogramSum([hist([1, 0, 0, 0], 0.001), hist([0, 1, 1, 0], 0.06)])!;
  assert.deepEqual(s, { count: 3, sumSeconds: 0.061, buckets: [[0.001, 1], [0.01, 2], [0.1, 3], [Infinity, 3]] });
});

test('replicaState: the status field, else the older booleans', () => {
  assert.equal(replicaState(undefined), 'unreachable');
  assert.equal(replicaState({ status: 'state-transfer' }), 'state-transfer');
  assert.equal(replicaState({ status: 'bogus', viewChanging: true }), 'view-change');
  assert.equal(replicaState({ transferring: true, viewChanging: false }), 'state-transfer');
  assert.equal(replicaState({ viewChanging: false }), 'normal');
  assert.equal(replicaState({}), 'unknown');
});

test('throughput is executed requests per second between rounds; a restarted replica (new pid) starts over, never a negative rate', () => {
  const m = new DashboardModel('c', { intervalMs: 1_000 });
  m.ingest(round(same({ executed: 100 })), T0);
  m.ingest(round(same({ executed: 300 })), T0 + 2_000);
  const fakes = same({ executed: 500 });
  fakes[2] = { executed: 5, pid: 999 };
  m.ingest(round(fakes), T0 + 3_000);
  const s = m.snapshot(T0 + 3_000);
  assert.deepEqual(s.times, [T0, T0 + 2_000, T0 + 3_000]);
  assert.deepEqual(s.replicas[0]!.series.throughput, [null, 100, 200]);
  assert.deepEqual(s.replicas[2]!.series.throughput, [null, 100, null], 'restart: no point, not -295/s');
  assert.deepEqual(s.series.throughput, [null, 100, 200], 'cluster: the median of the members');
});

test('latency: mean and p99 of the requests answered between rounds; the cluster adds every replica\'s histogram', () => {
  const m = new DashboardModel('c');
  const r0: Fake = { executed: 0, request: hist([0, 0, 0, 0], 0) };
  m.ingest(round([r0, { executed: 0 }, { executed: 0 }, { executed: 0 }]), T0);
  m.ingest(round([{ executed: 10, request: hist([0, 10, 0, 0], 0.05) }, { executed: 10 }, { executed: 10 }, { executed: 10 }]), T0 + 1_000);
  const s = m.snapshot(T0 + 1_000);
  assert.deepEqual(s.replicas[0]!.series.latencyMeanMs, [null, 5]);
  assert.equal(s.replicas[0]!.series.latencyP99Ms[1], 9.91, 'p99 interpolated in (1 ms, 10 ms]');
  assert.deepEqual(s.replicas[1]!.series.latencyMeanMs, [null, null], 'a backup that answered no request has no request latency');
  assert.deepEqual(s.series.latencyMeanMs, [null, 5]);
});

test('cluster view, primary and state; roles of live and dead replicas; a dead replica keeps showing where it was', () => {
  const m = new DashboardModel('c');
  m.ingest(round(same({ view: 0, primary: 0, executed: 1 })), T0);
  let s = m.snapshot(T0);
  assert.deepEqual([s.cluster.view, s.cluster.primary, s.cluster.state], [0, 0, 'normal']);
  assert.deepEqual(s.replicas.map((r) => r.role), ['primary', 'backup', 'backup', 'backup']);

  // The primary dies; the others have not moved yet: the dead one is still the primary of the view.
  m.ingest(round([{ down: true }, { executed: 1 }, { executed: 1 }, { executed: 1 }]), T0 + 1_000);
  s = m.snapshot(T0 + 1_000);
  assert.equal(s.replicas[0]!.reachable, false);
  assert.equal(s.replicas[0]!.state, 'unreachable');
  assert.equal(s.replicas[0]!.role, 'primary');
  assert.equal(s.replicas[0]!.error, 'ECONNREFUSED');
  assert.equal(s.replicas[0]!.view, 0, 'its last known view');
  assert.equal(s.replicas[0]!.lastSeenAtMs, T0);
  assert.equal(s.cluster.up, 3);

  const changing: Fake = { view: 1, primary: 1, status: 'view-change', executed: 1 };
  m.ingest(round([{ down: true }, changing, changing, { executed: 1 }]), T0 + 2_000);
  s = m.snapshot(T0 + 2_000);
  assert.equal(s.cluster.state, 'view-change');

  const moved: Fake = { view: 1, primary: 1, executed: 1 };
  m.ingest(round([{ down: true }, moved, moved, moved]), T0 + 3_000);
  s = m.snapshot(T0 + 3_000);
  assert.deepEqual([s.cluster.view, s.cluster.primary, s.cluster.state], [1, 1, 'normal']);
  assert.deepEqual(s.replicas.map((r) => r.role), ['backup', 'primary', 'backup', 'backup']);

  m.ingest(round([{ down: true }, { down: true }, moved, moved]), T0 + 4_000);
  assert.equal(m.snapshot(T0 + 4_000).cluster.state, 'no-quorum');
});

test('view changes: merged from the replicas\' histories (reasons, who entered, how long) and observed when a view moved', () => {
  const m = new DashboardModel('c');
  m.ingest(round(same({ view: 0 })), T0);
  const rec = (id: number) => ({
    view: 1,
    from: 0,
    reason: '2 replicas suspect the primary',
    suspected: 'request timeout',
    startedAtMs: T0 + 1_000 + id * 10,
    enteredAtMs: T0 + 1_200 + id,
    primary: 1,
  });
  m.ingest(round([{ down: true }, { view: 1, primary: 1, viewChangeHistory: [rec(1)] }, { view: 1, primary: 1, viewChangeHistory: [rec(2)] }, { view: 0 }]), T0 + 2_000);
  let vcs = m.snapshot(T0 + 2_000).viewChanges;
  assert.equal(vcs.length, 1);
  assert.deepEqual(vcs[0], {
    view: 1,
    from: 0,
    primary: 1,
    startedAtMs: T0 + 1_010,
    enteredAtMs: T0 + 1_201,
    durationMs: 191,
    reasons: [{ reason: '2 replicas suspect the primary', replicas: [1, 2] }],
    suspected: [{ reason: 'request timeout', replicas: [1, 2] }],
    enteredBy: [1, 2],
    observed: true,
  });
  // Replica 3 follows on the NEW-VIEW; its own record says so and is not a reason.
  m.ingest(
    round([{ down: true }, { view: 1, primary: 1 }, { view: 1, primary: 1 }, { view: 1, primary: 1, viewChangeHistory: [{ view: 1, from: 0, reason: 'entered on a NEW-VIEW', startedAtMs: T0 + 2_500, enteredAtMs: T0 + 2_500, primary: 1 }] }]),
    T0 + 3_000,
  );
  vcs = m.snapshot(T0 + 3_000).viewChanges;
  assert.deepEqual(vcs[0]!.enteredBy, [1, 2, 3]);
  assert.equal(vcs[0]!.reasons.length, 1);
  assert.equal(vcs[0]!.startedAtMs, T0 + 1_010);

  // A replica of an older version (no viewChangeHistory): the move is observed by the dashboard.
  const old = new DashboardModel('c');
  old.ingest(round(same({ view: 0 })), T0);
  old.ingest(round(same({ view: 2, primary: 2 })), T0 + 1_000);
  const seen = old.snapshot(T0 + 1_000).viewChanges;
  assert.deepEqual(seen.map((v) => [v.view, v.from, v.primary, v.startedAtMs, v.observed, v.enteredBy.length]), [[2, 0, 2, T0 + 1_000, true, 4]]);
  // A dashboard started in view 3 does not invent a view change.
  const late = new DashboardModel('c');
  late.ingest(round(same({ view: 3, primary: 3 })), T0);
  assert.deepEqual(late.snapshot(T0).viewChanges, []);
});

test('view changes are bounded: the lowest views are forgotten', () => {
  const m = new DashboardModel('c');
  for (let v = 0; v <= VIEW_CHANGES_MAX + 20; v++) m.ingest(round(same({ view: v, primary: v % 4 })), T0 + v * 1_000);
  const vcs = m.snapshot(T0 + (VIEW_CHANGES_MAX + 20) * 1_000).viewChanges;
  assert.equal(vcs.length, VIEW_CHANGES_MAX);
  assert.equal(vcs[0]!.view, VIEW_CHANGES_MAX + 20, 'newest first');
  assert.equal(vcs[vcs.length - 1]!.view, 21);
});

test('rejected inputs by reason: totals per replica, and what was added over the last minute', () => {
  const m = new DashboardModel('c', { intervalMs: 10_000 });
  m.ingest(round(same({ rejected: { 'bad-signature': 5, duplicate: 0 } })), T0);
  m.ingest(round(same({ rejected: { 'bad-signature': 7, 'old-view': 1 } })), T0 + 30_000);
  m.ingest(round(same({ rejected: { 'bad-signature': 9, 'old-view': 1 } })), T0 + 70_000);
  const r = m.snapshot(T0 + 70_000).rejected;
  assert.deepEqual(r[0], { reason: 'bad-signature', total: 36, lastMinute: 8, byReplica: { 0: 9, 1: 9, 2: 9, 3: 9 } });
  assert.deepEqual(r[1], { reason: 'old-view', total: 4, lastMinute: 0, byReplica: { 0: 1, 1: 1, 2: 1, 3: 1 } });
  assert.equal(r.length, 2, 'zero counts are left out');
});

test('evidence: misbehaviour merged per accused replica and code across the replicas that saw it', () => {
  const m = new DashboardModel('c');
  const seen = (at: number, reason: string) => ({ peer: 3, code: 'invalid-view-change', reason, count: 2, firstAtMs: at, lastAtMs: at + 5 });
  m.ingest(
    round([
      { misbehaviourHistory: [seen(T0, 'old')], misbehaviour: { 'invalid-view-change': 2 } },
      { misbehaviourHistory: [seen(T0 + 100, 'newest')], divergences: 1 },
      {},
      {},
    ]),
    T0 + 1_000,
  );
  const e = m.snapshot(T0 + 1_000).evidence;
  assert.deepEqual(e.misbehaviour, [{ peer: 3, code: 'invalid-view-change', reason: 'newest', count: 4, reportedBy: [0, 1], firstAtMs: T0, lastAtMs: T0 + 105 }]);
  assert.deepEqual(e.counts, [{ observer: 0, code: 'invalid-view-change', count: 2 }]);
  assert.deepEqual(e.divergences, [{ replica: 1, count: 1 }]);
  assert.deepEqual(e.equivocation, [], 'no replica holds equivocation evidence');
});

test('evidence: the equivocation evidence each replica holds, with the replicas it names; malformed summaries are ignored', () => {
  const m = new DashboardModel('c');
  const summary = (held: number, signers: unknown) => ({ held, byKind: { preprepare: 0, prepare: held, commit: 0, mixed: 0 }, signers, notKept: 0 });
  m.ingest(round([{ evidence: summary(2, [3]) }, { evidence: summary(0, []) }, { evidence: summary(1, [3, 'x', 2.5]) }, { evidence: 'none' }]), T0);
  assert.deepEqual(m.snapshot(T0).evidence.equivocation, [
    { observer: 0, held: 2, signers: [3] },
    { observer: 2, held: 1, signers: [3] },
  ]);
});

test('bounded memory: the series keep the history window, the ring never grows past its capacity', () => {
  const ring = new Ring<number>(3);
  for (let i = 0; i < 10; i++) ring.push(i);
  assert.deepEqual(ring.toArray(), [7, 8, 9]);
  assert.equal(ring.length, 3);
  assert.throws(() => new Ring(0), RangeError);

  const m = new DashboardModel('c', { historyMs: 10_000, intervalMs: 1_000 });
  for (let i = 0; i < 100; i++) m.ingest(round(same({ executed: i * 10 })), T0 + i * 1_000);
  const s = m.snapshot(T0 + 99_000);
  assert.equal(s.times.length, 11, 'points of the last 10 s');
  assert.equal(s.times[0], T0 + 89_000);
  assert.ok(s.series.throughput.every((v) => v === 10));
  // Rounds far more frequent than announced still keep at most the ring's capacity.
  const fast = new DashboardModel('c', { historyMs: 10_000, intervalMs: 1_000 });
  for (let i = 0; i < 1_000; i++) fast.ingest(round(same({ executed: i })), T0 + i);
  assert.ok(fast.snapshot(T0 + 1_000).times.length <= 12);
});

test('answers of another shape are read defensively: wrong types show as unknown, nothing throws', () => {
  const m = new DashboardModel('c');
  const weird: RoundInput = {
    replicas: [
      { replica: 0, url: 'ws://x:1', reachable: true, status: { view: 'zero', counters: null, rejected: { a: 'many', b: 2 }, viewChangeHistory: [null, 3, { view: 'x' }], misbehaviourHistory: 'no', transport: 7 } },
    ],
    epoch: 0,
    members: [0],
    n: 1,
    f: 0,
    quorum: 1,
    up: 1,
  };
  m.ingest(weird, T0);
  m.ingest(weird, T0 + 1_000);
  const s = m.snapshot(T0 + 1_000);
  assert.equal(s.replicas[0]!.view, undefined);
  assert.equal(s.replicas[0]!.state, 'unknown');
  assert.deepEqual(s.rejected, [{ reason: 'b', total: 2, lastMinute: 0, byReplica: { 0: 2 } }]);
  assert.deepEqual(s.viewChanges, []);
  assert.deepEqual(s.series.throughput, [null, null]);
});
