/**
 * What `pbft dashboard` shows, computed from rounds of /status (and the request-latency histogram
 * of /metrics) of every replica: pure functions and one aggregating class, no I/O and no clock (the
 * time of each round is passed in), so that tests drive it with made-up rounds.
 *
 *   DashboardModel.ingest(round, atMs)   remembers one round: per replica its last answer, the
 *                                        throughput and latency since the previous round, rejected
 *                                        counts, view changes (reported by the replicas, with their
 *                                        reasons, and observed as views that moved)
 *   DashboardModel.snapshot(atMs)        the JSON the page renders (GET /snapshot.json, /events)
 *
 * Everything kept is bounded: the series are ring buffers over the last `historyMs`, view changes
 * at most VIEW_CHANGES_MAX, rejected-count samples per replica at most a minute's worth.
 *
 * A replica's answer is remote JSON, possibly from another version: every field is read with a type
 * check, and a missing one is shown as unknown rather than trusted.
 */

/** Cumulative buckets of a Prometheus histogram: `[upper bound (Infinity for +Inf), count]`, by bound. */
export interface Histogram {
  count: number;
  sumSeconds: number;
  buckets: Array<[number, number]>;
}

/** One replica in one round: its /status answer when it answered as itself. */
export interface ReplicaInput {
  replica: number;
  url: string;
  reachable: boolean;
  error?: string;
  /** The /status object (only when reachable). */
  status?: Record<string, unknown>;
  /** Histograms from its /metrics, when read (see metricsHistograms). */
  metrics?: MetricsHistograms;
}

/**
 * The latency histograms the dashboard reads from a replica's /metrics: `request`, a client's
 * request arriving to its answer leaving (counted where clients send requests: the primary, and
 * backups after a retransmission); `prepare` and `commit`, per sequence number, the two phases of
 * agreement as this replica saw them (every replica counts these).
 */
export interface MetricsHistograms {
  request?: Histogram;
  prepare?: Histogram;
  commit?: Histogram;
}

/** One round over the cluster (what src/cli/status.ts pollCluster finds, plus /metrics). */
export interface RoundInput {
  replicas: ReplicaInput[];
  epoch: number;
  members: number[];
  n: number;
  f: number;
  quorum: number;
  up: number;
}

export type ReplicaState = 'normal' | 'view-change' | 'state-transfer' | 'recovering' | 'unreachable' | 'unknown';
export type Role = 'primary' | 'backup' | 'not a member';

export interface SeriesView {
  /** Requests executed per second. */
  throughput: Array<number | null>;
  /** Request latency: mean and estimated 99th percentile, milliseconds (null: no requests answered). */
  latencyMeanMs: Array<number | null>;
  latencyP99Ms: Array<number | null>;
  /** Agreement latency per batch, mean of the prepare and commit phases added, milliseconds. */
  agreementMs: Array<number | null>;
}

export interface ReplicaView {
  id: number;
  url: string;
  reachable: boolean;
  /** Why not (when unreachable). */
  error?: string;
  member: boolean;
  role: Role;
  state: ReplicaState;
  view?: number;
  primary?: number;
  lastExecuted?: number;
  stableCheckpoint?: number;
  lastCheckpoint?: { seq: number; digest: string };
  epoch?: number;
  suspicions?: number[];
  replicasConnected?: number[];
  clientsConnected?: number;
  pid?: number;
  uptimeSeconds?: number;
  rssBytes?: number;
  /** When the dashboard last got an answer from it (ms since the Unix epoch). */
  lastSeenAtMs?: number;
  series: SeriesView;
}

export interface ViewChangeView {
  view: number;
  from?: number;
  primary?: number;
  /** The earliest start a replica reported, or when the dashboard first saw a replica move. */
  startedAtMs?: number;
  /** The earliest a replica reported entering it. */
  enteredAtMs?: number;
  durationMs?: number;
  /** Why replicas started it (each reason with the replicas that gave it). */
  reasons: Array<{ reason: string; replicas: number[] }>;
  /** Why replicas suspected the old primary themselves (their own request timers). */
  suspected: Array<{ reason: string; replicas: number[] }>;
  enteredBy: number[];
  /** Seen by the dashboard as a view that moved, not (or not only) reported by a replica. */
  observed: boolean;
}

export interface RejectedView {
  reason: string;
  total: number;
  /** Added over about the last minute (for a replica that restarted: since the dashboard first saw its new process). */
  lastMinute: number;
  byReplica: Record<string, number>;
}

export interface MisbehaviourView {
  /** The replica accused. */
  peer: number;
  code: string;
  reason: string;
  count: number;
  reportedBy: number[];
  firstAtMs?: number;
  lastAtMs?: number;
}

export interface Snapshot {
  clusterId: string;
  atMs: number;
  historyMs: number;
  cluster: {
    epoch: number;
    members: number[];
    n: number;
    f: number;
    quorum: number;
    up: number;
    /** The view most reachable members are in (ties: the higher), its primary, and what the cluster does. */
    view?: number;
    primary?: number;
    state: 'normal' | 'view-change' | 'state-transfer' | 'no-quorum' | 'degraded';
    nextEpoch?: { epoch: number; since: number; replicas: number[] };
  };
  replicas: ReplicaView[];
  /** Times of the series points (ms since the Unix epoch), oldest first; every series aligns with it. */
  times: number[];
  series: SeriesView;
  viewChanges: ViewChangeView[];
  rejected: RejectedView[];
  evidence: {
    misbehaviour: MisbehaviourView[];
    /** Counts by code, per replica that saw them. */
    counts: Array<{ observer: number; code: string; count: number }>;
    divergences: Array<{ replica: number; count: number }>;
    storedState: Array<{ replica: number; corruptions: number; losses: number }>;
    clientsCutOff: Array<{ replica: number; count: number }>;
    /** Equivocation evidence each replica holds (/status `evidence`; the pieces: GET /evidence). */
    equivocation: Array<{ observer: number; held: number; signers: number[] }>;
  };
}

export const HISTORY_MS_DEFAULT = 5 * 60_000;
/** View changes kept (the lowest views are forgotten first). */
export const VIEW_CHANGES_MAX = 50;
/** Misbehaviour entries in a snapshot, at most (the most recent). */
export const MISBEHAVIOUR_SHOWN_MAX = 50;
const MINUTE_MS = 60_000;
/** Points a series keeps at most, whatever the round interval (bounds memory if rounds are very frequent). */
export const SERIES_POINTS_MAX = 3_600;

/** A fixed-capacity ring buffer: push overwrites the oldest item once full. */
export class Ring<T> {
  private readonly items: T[] = [];
  private start = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`ring capacity must be a positive integer, got ${capacity}`);
  }

  get length(): number {
    return this.items.length;
  }

  push(item: T): void {
    if (this.items.length < this.capacity) {
      this.items.push(item);
      return;
    }
    this.items[this.start] = item;
    this.start = (this.start + 1) % this.capacity;
  }

  /** Oldest first. */
  toArray(): T[] {
    return [...this.items.slice(this.start), ...this.items.slice(0, this.start)];
  }
}

// ---------------------------------------------------------------------------------------------
// Reading remote JSON

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const bool = (v: unknown): boolean | undefined => (typeof v === 'boolean' ? v : undefined);
const obj = (v: unknown): Record<string, unknown> | undefined => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
const nums = (v: unknown): number[] | undefined => (Array.isArray(v) && v.every((x) => typeof x === 'number') ? (v as number[]) : undefined);

/** A map of counts (`rejected`, `misbehaviour`): only finite numbers are kept. */
function counts(v: unknown): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, x] of Object.entries(obj(v) ?? {})) {
    const n = num(x);
    if (n !== undefined) out.set(k, n);
  }
  return out;
}

const STATES = new Set<ReplicaState>(['normal', 'view-change', 'state-transfer', 'recovering']);

/** The replica's own state from its /status (`status`, else derived from the older boolean fields). */
export function replicaState(status: Record<string, unknown> | undefined): ReplicaState {
  if (status === undefined) return 'unreachable';
  const s = str(status.status);
  if (s !== undefined && STATES.has(s as ReplicaState)) return s as ReplicaState;
  if (status.transferring === true) return 'state-transfer';
  if (status.viewChanging === true) return 'view-change';
  if (status.viewChanging === false) return 'normal';
  return 'unknown';
}

// ---------------------------------------------------------------------------------------------
// Histograms

function parseLabels(text: string | undefined): Map<string, string> | undefined {
  const out = new Map<string, string>();
  if (text === undefined || text === '') return out;
  const re = /\s*([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;
  let at = 0;
  while (at < text.length) {
    re.lastIndex = at;
    const m = re.exec(text);
    if (m === null) return undefined;
    out.set(m[1]!, m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c)));
    at = re.lastIndex;
  }
  return out;
}

/**
 * The histogram `name` with exactly the labels `labels` (besides `le`) from a Prometheus text
 * exposition, or undefined when it is not there or malformed.
 */
export function parseHistogram(text: string, name: string, labels: Record<string, string> = {}): Histogram | undefined {
  let count: number | undefined;
  let sum: number | undefined;
  const buckets: Array<[number, number]> = [];
  const wanted = Object.entries(labels);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '_')) continue;
    const m = /^_(bucket|sum|count)(?:\{(.*)\})? (\S+)(?: \S+)?$/.exec(line.slice(name.length).trim());
    if (m === null) continue;
    const set = parseLabels(m[2]);
    if (set === undefined) continue;
    const le = set.get('le');
    set.delete('le');
    if (set.size !== wanted.length || wanted.some(([k, v]) => set.get(k) !== v)) continue;
    const value = m[3] === '+Inf' ? Infinity : Number(m[3]);
    if (!Number.isFinite(value)) return undefined;
    if (m[1] === 'sum') sum = value;
    else if (m[1] === 'count') count = value;
    else {
      if (le === undefined) return undefined;
      const bound = le === '+Inf' ? Infinity : Number(le);
      if (Number.isNaN(bound)) return undefined;
      buckets.push([bound, value]);
    }
  }
  if (count === undefined || sum === undefined || buckets.length === 0) return undefined;
  buckets.sort((a, b) => a[0] - b[0]);
  return { count, sumSeconds: sum, buckets };
}

/** The histograms the dashboard uses, from a replica's /metrics text. */
export function metricsHistograms(text: string): MetricsHistograms {
  const out: MetricsHistograms = {};
  const request = parseHistogram(text, 'pbft_request_duration_seconds');
  const prepare = parseHistogram(text, 'pbft_phase_duration_seconds', { phase: 'prepare' });
  const commit = parseHistogram(text, 'pbft_phase_duration_seconds', { phase: 'commit' });
  if (request !== undefined) out.request = request;
  if (prepare !== undefined) out.prepare = prepare;
  if (commit !== undefined) out.commit = commit;
  return out;
}

/** What was observed between two readings of one histogram (undefined if it went backwards: a restart). */
export function histogramDelta(before: Histogram, after: Histogram): Histogram | undefined {
  if (after.count < before.count || after.sumSeconds < before.sumSeconds - 1e-9) return undefined;
  const prior = new Map(before.buckets);
  const buckets: Array<[number, number]> = [];
  for (const [le, c] of after.buckets) {
    const d = c - (prior.get(le) ?? 0);
    if (d < 0) return undefined;
    buckets.push([le, d]);
  }
  return { count: after.count - before.count, sumSeconds: Math.max(0, after.sumSeconds - before.sumSeconds), buckets };
}

/** Sum of histograms with the same buckets (a bucket missing from one counts as its next lower). */
export function histogramSum(list: Histogram[]): Histogram | undefined {
  if (list.length === 0) return undefined;
  const bounds = [...new Set(list.flatMap((h) => h.buckets.map(([le]) => le)))].sort((a, b) => a - b);
  const buckets: Array<[number, number]> = bounds.map((le) => [le, 0]);
  for (const h of list) {
    for (const b of buckets) {
      let c = 0;
      for (const [le, n] of h.buckets) if (le <= b[0]) c = n;
      b[1] += c;
    }
  }
  return { count: list.reduce((s, h) => s + h.count, 0), sumSeconds: list.reduce((s, h) => s + h.sumSeconds, 0), buckets };
}

/**
 * The q-quantile (0 < q <= 1) of a cumulative histogram in seconds, interpolated linearly within its
 * bucket as Prometheus's histogram_quantile does; in the +Inf bucket, the highest finite bound.
 * undefined when it holds no observation.
 */
export function histogramQuantile(h: Histogram, q: number): number | undefined {
  const total = h.buckets.length > 0 ? h.buckets[h.buckets.length - 1]![1] : 0;
  if (!(total > 0)) return undefined;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, c] of h.buckets) {
    if (c >= rank) {
      if (le === Infinity) return lower;
      if (c === below || c === rank) return le;
      return lower + ((le - lower) * (rank - below)) / (c - below);
    }
    lower = le === Infinity ? lower : le;
    below = c;
  }
  return lower;
}

const roundTo = (v: number, digits: number): number => {
  const p = 10 ** digits;
  return Math.round(v * p) / p;
};

function latencyOf(delta: Histogram | undefined): { mean: number | null; p99: number | null } {
  if (delta === undefined || !(delta.count > 0)) return { mean: null, p99: null };
  const p99 = histogramQuantile(delta, 0.99);
  return { mean: roundTo((delta.sumSeconds / delta.count) * 1000, 3), p99: p99 === undefined ? null : roundTo(p99 * 1000, 3) };
}

function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

// ---------------------------------------------------------------------------------------------
// The model

interface Point {
  throughput: number | null;
  latencyMeanMs: number | null;
  latencyP99Ms: number | null;
  agreementMs: number | null;
}

const NO_POINT: Point = { throughput: null, latencyMeanMs: null, latencyP99Ms: null, agreementMs: null };

/** Mean of each phase over the interval, added (undefined when either saw nothing). */
function agreementMs(before: MetricsHistograms | undefined, after: MetricsHistograms | undefined): number | null {
  let total = 0;
  for (const phase of ['prepare', 'commit'] as const) {
    const a = before?.[phase];
    const b = after?.[phase];
    const d = a !== undefined && b !== undefined ? histogramDelta(a, b) : undefined;
    if (d === undefined || !(d.count > 0)) return null;
    total += d.sumSeconds / d.count;
  }
  return roundTo(total * 1000, 3);
}

interface Round {
  atMs: number;
  cluster: Point;
  replicas: Map<number, Point>;
}

interface ReplicaMemory {
  /** The last /status it answered, and when. */
  lastStatus?: Record<string, unknown>;
  lastSeenAtMs?: number;
  /** For rates: the previous reading. */
  reading?: { atMs: number; pid: number | undefined; executed: number; metrics?: MetricsHistograms };
  /** Rejected totals over about the last minute (one sample per round it answered). */
  rejected: Ring<{ atMs: number; pid: number | undefined; counts: Map<string, number> }>;
  /** The view it was last seen in. */
  view?: number;
}

interface ViewChangeMemory {
  view: number;
  from?: number;
  primary?: number;
  startedAtMs?: number;
  enteredAtMs?: number;
  reasons: Map<string, Set<number>>;
  suspected: Map<string, Set<number>>;
  enteredBy: Set<number>;
  observed: boolean;
}

const NEW_VIEW_ENTRY = 'entered on a NEW-VIEW';

export interface DashboardModelOptions {
  /** How far back the series reach. */
  historyMs?: number;
  /** The expected time between rounds (sizes the ring buffers). */
  intervalMs?: number;
}

export class DashboardModel {
  readonly historyMs: number;
  private readonly rounds: Ring<Round>;
  private readonly replicas = new Map<number, ReplicaMemory>();
  private readonly viewChanges = new Map<number, ViewChangeMemory>();
  private round: RoundInput | undefined;
  private readonly rejectedSamplesMax: number;

  constructor(
    readonly clusterId: string,
    options: DashboardModelOptions = {},
  ) {
    this.historyMs = options.historyMs ?? HISTORY_MS_DEFAULT;
    const intervalMs = Math.max(1, options.intervalMs ?? 1_000);
    this.rounds = new Ring(Math.min(SERIES_POINTS_MAX, Math.ceil(this.historyMs / intervalMs) + 2));
    this.rejectedSamplesMax = Math.min(SERIES_POINTS_MAX, Math.ceil(MINUTE_MS / intervalMs) + 2);
  }

  /** One round of answers, taken at `atMs` (ms since the Unix epoch). */
  ingest(round: RoundInput, atMs: number): void {
    this.round = round;
    const points = new Map<number, Point>();
    const rates: number[] = [];
    const latencies: Histogram[] = [];
    for (const r of round.replicas) {
      const mem = this.memory(r.replica);
      const s = r.reachable ? r.status : undefined;
      if (s === undefined) {
        points.set(r.replica, NO_POINT);
        continue;
      }
      mem.lastStatus = s;
      mem.lastSeenAtMs = atMs;
      const pid = num(s.pid);
      const executed = num(obj(s.counters)?.requestsExecuted);
      let point: Point = NO_POINT;
      const prev = mem.reading;
      if (executed !== undefined && prev !== undefined && prev.pid === pid && atMs > prev.atMs && executed >= prev.executed) {
        const rate = round1((executed - prev.executed) / ((atMs - prev.atMs) / 1000));
        const before = prev.metrics?.request;
        const after = r.metrics?.request;
        const delta = before !== undefined && after !== undefined ? histogramDelta(before, after) : undefined;
        const lat = latencyOf(delta);
        point = { throughput: rate, latencyMeanMs: lat.mean, latencyP99Ms: lat.p99, agreementMs: agreementMs(prev.metrics, r.metrics) };
        if (round.members.includes(r.replica)) rates.push(rate);
        if (delta !== undefined && delta.count > 0) latencies.push(delta);
      }
      points.set(r.replica, point);
      mem.reading = executed !== undefined ? { atMs, pid, executed, ...(r.metrics !== undefined ? { metrics: r.metrics } : {}) } : undefined;
      mem.rejected.push({ atMs, pid, counts: counts(s.rejected) });
      this.noteViewChanges(r.replica, s, mem, atMs);
    }
    const clusterLatency = latencyOf(histogramSum(latencies));
    const tput = median(rates);
    const agreements = [...points].filter(([id, p]) => p.agreementMs !== null && round.members.includes(id)).map(([, p]) => p.agreementMs!);
    const agreement = median(agreements);
    this.rounds.push({
      atMs,
      cluster: {
        throughput: tput === null ? null : round1(tput),
        latencyMeanMs: clusterLatency.mean,
        latencyP99Ms: clusterLatency.p99,
        agreementMs: agreement === null ? null : roundTo(agreement, 3),
      },
      replicas: points,
    });
  }

  private memory(id: number): ReplicaMemory {
    let mem = this.replicas.get(id);
    if (mem === undefined) {
      mem = { rejected: new Ring(this.rejectedSamplesMax) };
      this.replicas.set(id, mem);
    }
    return mem;
  }

  private viewChange(view: number): ViewChangeMemory {
    let vc = this.viewChanges.get(view);
    if (vc === undefined) {
      vc = { view, reasons: new Map(), suspected: new Map(), enteredBy: new Set(), observed: false };
      this.viewChanges.set(view, vc);
      if (this.viewChanges.size > VIEW_CHANGES_MAX) this.viewChanges.delete(Math.min(...this.viewChanges.keys()));
    }
    return vc;
  }

  /** The view changes a replica reports, and its view moving since the last round. */
  private noteViewChanges(id: number, s: Record<string, unknown>, mem: ReplicaMemory, atMs: number): void {
    const history = Array.isArray(s.viewChangeHistory) ? s.viewChangeHistory : [];
    for (const item of history) {
      const rec = obj(item);
      const view = num(rec?.view);
      if (rec === undefined || view === undefined || view < 1) continue;
      if (this.viewChanges.size >= VIEW_CHANGES_MAX && !this.viewChanges.has(view) && view < Math.min(...this.viewChanges.keys())) continue;
      const vc = this.viewChange(view);
      const from = num(rec.from);
      if (from !== undefined && (vc.from === undefined || from > vc.from)) vc.from = from;
      const started = num(rec.startedAtMs);
      const reason = str(rec.reason);
      if (started !== undefined && reason !== NEW_VIEW_ENTRY) vc.startedAtMs = Math.min(vc.startedAtMs ?? started, started);
      if (reason !== undefined && reason !== NEW_VIEW_ENTRY) addTo(vc.reasons, reason, id);
      const suspected = str(rec.suspected);
      if (suspected !== undefined) addTo(vc.suspected, suspected, id);
      const entered = num(rec.enteredAtMs);
      if (entered !== undefined) {
        vc.enteredAtMs = Math.min(vc.enteredAtMs ?? entered, entered);
        vc.enteredBy.add(id);
        const primary = num(rec.primary);
        if (primary !== undefined) vc.primary = primary;
      }
    }
    const view = num(s.view);
    if (view === undefined) return;
    const before = mem.view;
    mem.view = view;
    // A view that moved between two rounds is a view change, whether or not the replica reports it.
    if (before !== undefined && view > before) {
      const vc = this.viewChange(view);
      vc.observed = true;
      if (vc.from === undefined || before > vc.from) vc.from = before;
      if (vc.startedAtMs === undefined) vc.startedAtMs = atMs;
    }
    if (view >= 1 && this.viewChanges.has(view) && replicaState(s) !== 'view-change') {
      const vc = this.viewChanges.get(view)!;
      vc.enteredBy.add(id);
      const primary = num(s.primary);
      if (primary !== undefined && vc.primary === undefined) vc.primary = primary;
      if (vc.enteredAtMs === undefined) vc.enteredAtMs = atMs;
    }
  }

  snapshot(atMs: number): Snapshot {
    const round = this.round ?? { replicas: [], epoch: 0, members: [], n: 0, f: 0, quorum: 0, up: 0 };
    const members = new Set(round.members);
    const rounds = this.rounds.toArray().filter((r) => r.atMs >= atMs - this.historyMs);
    const times = rounds.map((r) => r.atMs);
    const seriesOf = (pick: (r: Round) => Point | undefined): SeriesView => ({
      throughput: rounds.map((r) => pick(r)?.throughput ?? null),
      latencyMeanMs: rounds.map((r) => pick(r)?.latencyMeanMs ?? null),
      latencyP99Ms: rounds.map((r) => pick(r)?.latencyP99Ms ?? null),
      agreementMs: rounds.map((r) => pick(r)?.agreementMs ?? null),
    });

    // The cluster's view: the one most reachable members are in (ties: the higher).
    const inView = new Map<number, { count: number; normal: number; primaries: Map<number, number> }>();
    let viewChanging = false;
    let transferring = false;
    let nextEpoch: Snapshot['cluster']['nextEpoch'];
    for (const r of round.replicas) {
      const s = r.reachable ? r.status : undefined;
      if (s === undefined || !members.has(r.replica)) continue;
      const view = num(s.view);
      const state = replicaState(s);
      if (state === 'view-change') viewChanging = true;
      if (state === 'state-transfer') transferring = true;
      const next = obj(s.nextEpoch);
      const nextE = num(next?.epoch);
      if (next !== undefined && nextE !== undefined && (nextEpoch === undefined || nextE > nextEpoch.epoch)) {
        nextEpoch = { epoch: nextE, since: num(next.since) ?? 0, replicas: nums(next.replicas) ?? [] };
      }
      if (view === undefined) continue;
      const e = inView.get(view) ?? { count: 0, normal: 0, primaries: new Map() };
      e.count++;
      if (state === 'normal') e.normal++;
      const p = num(s.primary);
      if (p !== undefined) e.primaries.set(p, (e.primaries.get(p) ?? 0) + 1);
      inView.set(view, e);
    }
    let clusterView: number | undefined;
    for (const [v, e] of inView) {
      if (clusterView === undefined || e.count > inView.get(clusterView)!.count || (e.count === inView.get(clusterView)!.count && v > clusterView)) clusterView = v;
    }
    const viewEntry = clusterView !== undefined ? inView.get(clusterView) : undefined;
    let clusterPrimary: number | undefined;
    if (viewEntry !== undefined) {
      let best = 0;
      for (const [p, c] of viewEntry.primaries) if (c > best) [clusterPrimary, best] = [p, c];
    }
    const state: Snapshot['cluster']['state'] =
      round.up < round.quorum ? 'no-quorum' : viewEntry !== undefined && viewEntry.normal >= round.quorum ? 'normal' : viewChanging ? 'view-change' : transferring ? 'state-transfer' : 'degraded';

    const replicas: ReplicaView[] = round.replicas.map((r) => {
      const mem = this.replicas.get(r.replica);
      const s = r.reachable ? r.status : undefined;
      const member = members.has(r.replica);
      const primary = s !== undefined ? num(s.primary) : clusterPrimary;
      const view: ReplicaView = {
        id: r.replica,
        url: r.url,
        reachable: s !== undefined,
        member,
        role: !member ? 'not a member' : primary === r.replica ? 'primary' : 'backup',
        state: replicaState(s),
        series: seriesOf((x) => x.replicas.get(r.replica)),
      };
      if (s === undefined) {
        if (r.error !== undefined) view.error = r.error;
        // What it said last, so that a replica that died shows where it was.
        const last = mem?.lastStatus;
        if (last !== undefined) {
          const v = num(last.view);
          const le = num(last.lastExecuted);
          if (v !== undefined) view.view = v;
          if (le !== undefined) view.lastExecuted = le;
        }
      } else {
        assign(view, 'view', num(s.view));
        assign(view, 'primary', num(s.primary));
        assign(view, 'lastExecuted', num(s.lastExecuted));
        assign(view, 'stableCheckpoint', num(obj(s.stableCheckpoint)?.seq));
        const lc = obj(s.lastCheckpoint);
        const lcSeq = num(lc?.seq);
        const lcDigest = str(lc?.digest);
        if (lcSeq !== undefined && lcDigest !== undefined) view.lastCheckpoint = { seq: lcSeq, digest: lcDigest };
        assign(view, 'epoch', num(s.epoch));
        assign(view, 'suspicions', nums(s.suspicions));
        assign(view, 'replicasConnected', nums(obj(s.transport)?.replicasConnected));
        assign(view, 'clientsConnected', num(obj(s.transport)?.clientsConnected));
        assign(view, 'pid', num(s.pid));
        assign(view, 'uptimeSeconds', num(s.uptimeSeconds));
        assign(view, 'rssBytes', num(obj(s.memory)?.rss));
        if (bool(s.member) === false) view.role = 'not a member';
      }
      if (mem?.lastSeenAtMs !== undefined) view.lastSeenAtMs = mem.lastSeenAtMs;
      return view;
    });

    return {
      clusterId: this.clusterId,
      atMs,
      historyMs: this.historyMs,
      cluster: {
        epoch: round.epoch,
        members: round.members,
        n: round.n,
        f: round.f,
        quorum: round.quorum,
        up: round.up,
        ...(clusterView !== undefined ? { view: clusterView } : {}),
        ...(clusterPrimary !== undefined ? { primary: clusterPrimary } : {}),
        state,
        ...(nextEpoch !== undefined ? { nextEpoch } : {}),
      },
      replicas,
      times,
      series: seriesOf((x) => x.cluster),
      viewChanges: this.viewChangeViews(),
      rejected: this.rejectedViews(round, atMs),
      evidence: this.evidence(round),
    };
  }

  private viewChangeViews(): ViewChangeView[] {
    const grouped = (m: Map<string, Set<number>>): Array<{ reason: string; replicas: number[] }> =>
      [...m].map(([reason, ids]) => ({ reason, replicas: [...ids].sort((a, b) => a - b) })).sort((a, b) => b.replicas.length - a.replicas.length);
    return [...this.viewChanges.values()]
      .sort((a, b) => b.view - a.view)
      .map((vc) => {
        const out: ViewChangeView = {
          view: vc.view,
          reasons: grouped(vc.reasons),
          suspected: grouped(vc.suspected),
          enteredBy: [...vc.enteredBy].sort((a, b) => a - b),
          observed: vc.observed,
        };
        assign(out, 'from', vc.from);
        assign(out, 'primary', vc.primary);
        assign(out, 'startedAtMs', vc.startedAtMs);
        assign(out, 'enteredAtMs', vc.enteredAtMs);
        if (vc.startedAtMs !== undefined && vc.enteredAtMs !== undefined) out.durationMs = Math.max(0, vc.enteredAtMs - vc.startedAtMs);
        return out;
      });
  }

  private rejectedViews(round: RoundInput, atMs: number): RejectedView[] {
    const byReason = new Map<string, RejectedView>();
    for (const r of round.replicas) {
      if (!r.reachable) continue;
      const samples = this.replicas.get(r.replica)?.rejected.toArray() ?? [];
      const now = samples[samples.length - 1];
      if (now === undefined) continue;
      // The oldest sample of this process within the last minute.
      const base = samples.find((x) => x.atMs >= atMs - MINUTE_MS && x.pid === now.pid && x !== now);
      for (const [reason, total] of now.counts) {
        if (total === 0) continue;
        const v = byReason.get(reason) ?? { reason, total: 0, lastMinute: 0, byReplica: {} };
        v.total += total;
        v.lastMinute += base !== undefined ? Math.max(0, total - (base.counts.get(reason) ?? 0)) : 0;
        v.byReplica[String(r.replica)] = total;
        byReason.set(reason, v);
      }
    }
    return [...byReason.values()].sort((a, b) => b.total - a.total || (a.reason < b.reason ? -1 : 1));
  }

  private evidence(round: RoundInput): Snapshot['evidence'] {
    const merged = new Map<string, MisbehaviourView>();
    const countsOut: Snapshot['evidence']['counts'] = [];
    const divergences: Snapshot['evidence']['divergences'] = [];
    const storedState: Snapshot['evidence']['storedState'] = [];
    const clientsCutOff: Snapshot['evidence']['clientsCutOff'] = [];
    const equivocation: Snapshot['evidence']['equivocation'] = [];
    for (const r of round.replicas) {
      const s = r.reachable ? r.status : undefined;
      if (s === undefined) continue;
      for (const [code, count] of counts(s.misbehaviour)) if (count > 0) countsOut.push({ observer: r.replica, code, count });
      const history = Array.isArray(s.misbehaviourHistory) ? s.misbehaviourHistory : [];
      for (const item of history) {
        const rec = obj(item);
        const peer = num(rec?.peer);
        const code = str(rec?.code);
        if (rec === undefined || peer === undefined || code === undefined) continue;
        const key = `${peer}:${code}`;
        const m = merged.get(key) ?? { peer, code, reason: '', count: 0, reportedBy: [] };
        const last = num(rec.lastAtMs);
        const first = num(rec.firstAtMs);
        if (last !== undefined && (m.lastAtMs === undefined || last >= m.lastAtMs)) {
          m.lastAtMs = last;
          m.reason = str(rec.reason) ?? m.reason;
        } else if (m.reason === '') m.reason = str(rec.reason) ?? '';
        if (first !== undefined) m.firstAtMs = Math.min(m.firstAtMs ?? first, first);
        m.count += num(rec.count) ?? 0;
        if (!m.reportedBy.includes(r.replica)) m.reportedBy.push(r.replica);
        merged.set(key, m);
      }
      const d = num(s.divergences) ?? 0;
      if (d > 0) divergences.push({ replica: r.replica, count: d });
      const corruptions = num(s.storedStateCorruptions) ?? 0;
      const losses = num(s.storedStateLosses) ?? 0;
      if (corruptions > 0 || losses > 0) storedState.push({ replica: r.replica, corruptions, losses });
      const cut = num(obj(s.transport)?.clientsCutOff) ?? 0;
      if (cut > 0) clientsCutOff.push({ replica: r.replica, count: cut });
      const ev = obj(s.evidence);
      const held = num(ev?.held) ?? 0;
      if (held > 0) {
        const signers = Array.isArray(ev?.signers) ? ev.signers.filter((x): x is number => typeof x === 'number' && Number.isInteger(x)) : [];
        equivocation.push({ observer: r.replica, held, signers: [...signers].sort((a, b) => a - b) });
      }
    }
    const misbehaviour = [...merged.values()]
      .map((m) => ({ ...m, reportedBy: m.reportedBy.sort((a, b) => a - b) }))
      .sort((a, b) => (b.lastAtMs ?? 0) - (a.lastAtMs ?? 0))
      .slice(0, MISBEHAVIOUR_SHOWN_MAX);
    return { misbehaviour, counts: countsOut, divergences, storedState, clientsCutOff, equivocation };
  }
}

function round1(v: number): number {
  return roundTo(v, 1);
}

function addTo(m: Map<string, Set<number>>, key: string, id: number): void {
  const set = m.get(key) ?? new Set<number>();
  set.add(id);
  m.set(key, set);
}

function assign<T extends object, K extends keyof T>(target: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) target[key] = value;
}
