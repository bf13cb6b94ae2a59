/**
 * A readable timeline of one swarm seed (src/sim/swarm.ts), for regression scripts
 * (test/scenarios/testdata/seed-*.txt) and for reading a failing seed.
 *
 * A seed runs thousands of ticks and delivers tens of thousands of messages: a message-level trace is
 * too long to read. The recorder watches the SimCluster from outside, between and across its steps
 * (no hook inside the cluster): it notes faults as they happen (crashes with their point in the turn
 * pipeline, restarts, wiped or damaged disks, partitions and heals, the start of the liveness phase),
 * the protocol events that tell the story of a run (view changes started and entered, checkpoints
 * becoming stable, state transfers, lost state), then the end state of every replica and the
 * checkers' verdict. Everything it prints is deterministic for a given seed and build.
 */
import type { CoreEvent } from '../core/replica.ts';
import type { SimCluster } from './cluster.ts';
import { runSeed, type SeedReport, type SwarmOptions } from './swarm.ts';

export interface SeedTrace {
  report: SeedReport;
  /** The timeline and end state, one line per fact. */
  text: string;
  lines: string[];
}

/** Fault counters that are noise in a timeline (counted per message or per client action). */
const QUIET_FAULTS = /^(client-|forged$|network-|byzantine-|twins$|state-transfer$|lost-state-detected$|signing-resumed$)/;

interface Snapshot {
  up: boolean[];
  faults: Record<string, number>;
  cut: string;
  calm: unknown;
}

class Recorder {
  readonly lines: string[] = [];
  private last?: Snapshot;
  private eventsSeen = 0;
  /** view -> replicas that entered it (printed once per view, at the first entry). */
  private readonly entered = new Map<number, { at: number; replicas: string[]; seen: Set<number>; line: number }>();
  private readonly stable = new Map<number, { at: number; replicas: string[]; seen: Set<number>; line: number }>();

  constructor(private readonly sim: SimCluster) {
    sim.keepEvents = true;
    const step = sim.step.bind(sim);
    sim.step = () => {
      this.observe();
      step();
      this.observe();
    };
  }

  private snapshot(): Snapshot {
    const sim = this.sim;
    const n = sim.n;
    const cut: string[] = [];
    for (let a = 0; a < n; a++) {
      const to: number[] = [];
      for (let b = 0; b < n; b++) if (a !== b && sim.net.isCut(a, b)) to.push(b);
      if (to.length > 0) cut.push(`${a}->${to.join(',')}`);
    }
    return { up: sim.hosts.map((h) => h.main !== undefined), faults: { ...sim.faults }, cut: cut.join(' '), calm: sim.net.faults };
  }

  private at(): string {
    return `t=${this.sim.now}`;
  }

  /** Notes what changed since the last look, then the events the cluster recorded since. */
  observe(): void {
    const now = this.snapshot();
    const prev = this.last;
    this.last = now;
    if (prev) {
      const changed = Object.keys(now.faults)
        .filter((k) => !QUIET_FAULTS.test(k) && (now.faults[k] ?? 0) > (prev.faults[k] ?? 0))
        .sort();
      const down = now.up.flatMap((u, i) => (!u && prev.up[i] ? [i] : []));
      const up = now.up.flatMap((u, i) => (u && !prev.up[i] ? [i] : []));
      const crashKinds = changed.filter((k) => k.startsWith('crash'));
      for (const id of down) this.lines.push(`${this.at()} ${id} ${crashKinds.length > 0 ? crashKinds.join('/') : 'crash'}`);
      for (const k of changed) {
        if (k.startsWith('crash') || k === 'restart') continue;
        if (k.startsWith('partition-')) this.lines.push(`${this.at()} ${k}: links cut ${now.cut || '(replica-client only)'}`);
        else if (k === 'wipe' || k === 'disk-damage') {
          // (the swarm crashes the replica, then wipes or damages its disk, between two steps)
          const whom = down.length > 0 ? down : now.up.flatMap((u, i) => (u ? [] : [i]));
          this.lines.push(`${this.at()} ${whom.join(',')} ${k === 'wipe' ? 'disk wiped' : 'disk damaged (records reverted to an older image, horizon record kept)'}`);
        } else this.lines.push(`${this.at()} ${k}`);
      }
      for (const id of up) this.lines.push(`${this.at()} ${id} restart`);
      if (prev.cut !== '' && now.cut === '' && !changed.some((k) => k.startsWith('partition-'))) this.lines.push(`${this.at()} network healed`);
      if (now.calm !== prev.calm) this.lines.push(`${this.at()} faults stop: liveness phase (every request must be answered)`);
    }
    const events = this.sim.events;
    for (; this.eventsSeen < events.length; this.eventsSeen++) this.event(events[this.eventsSeen]!);
    // Nothing else needs the events: keep memory flat over long runs.
    if (events.length > 10_000) {
      events.length = 0;
      this.eventsSeen = 0;
    }
  }

  private event(e: { replica: number; tick: number; event: CoreEvent }): void {
    const ev = e.event;
    const t = `t=${e.tick}`;
    switch (ev.type) {
      case 'view-change-started':
        this.lines.push(`${t} ${e.replica} view-change-started v=${ev.view} (${ev.reason})`);
        break;
      case 'view-entered':
        this.group(this.entered, ev.view, e, (who) => `view ${ev.view} (primary ${ev.primary}) entered by ${who}`);
        break;
      case 'checkpoint-stable':
        this.group(this.stable, ev.seq, e, (who) => `checkpoint ${ev.seq} stable at ${who}`);
        break;
      case 'state-transfer-started':
        this.lines.push(`${t} ${e.replica} state-transfer-started s=${ev.seq} (${ev.reason})`);
        break;
      case 'state-transfer-completed':
        this.lines.push(`${t} ${e.replica} state-transfer-completed s=${ev.seq}`);
        break;
      case 'stored-state-lost':
        this.lines.push(`${t} ${e.replica} stored-state-lost floor v=${ev.floor.view} s=${ev.floor.seq}`);
        break;
      case 'abstaining':
        this.lines.push(`${t} ${e.replica} abstaining v<=${ev.abstain.view} s<=${ev.abstain.seq}`);
        break;
      case 'abstaining-ended':
        this.lines.push(`${t} ${e.replica} abstaining-ended v=${ev.view} stable=${ev.stable}`);
        break;
      case 'signing-resumed':
        this.lines.push(`${t} ${e.replica} signing-resumed v=${ev.view} stable=${ev.stable}`);
        break;
      case 'state-diverged':
        this.lines.push(`${t} ${e.replica} state-diverged s=${ev.seq}`);
        break;
      default:
        break;
    }
  }

  /**
   * One line per view (or checkpoint), where it was first reached: by whom, in order, each later
   * replica with how many ticks after the first (`3 (+13)`).
   */
  private group(
    map: Map<number, { at: number; replicas: string[]; seen: Set<number>; line: number }>,
    key: number,
    e: { replica: number; tick: number },
    text: (who: string) => string,
  ): void {
    let g = map.get(key);
    if (!g) {
      g = { at: e.tick, replicas: [], seen: new Set(), line: this.lines.length };
      map.set(key, g);
      this.lines.push('');
    }
    if (g.seen.has(e.replica)) return;
    g.seen.add(e.replica);
    g.replicas.push(e.tick === g.at ? `${e.replica}` : `${e.replica} (+${e.tick - g.at})`);
    this.lines[g.line] = `t=${g.at} ${text(g.replicas.join(', '))}`;
  }
}

/** Runs `seed` as the swarm does, recording its timeline; returns the report and the text. */
export function traceSeed(seed: number, options: SwarmOptions): SeedTrace {
  let recorder: Recorder | undefined;
  let cluster: SimCluster | undefined;
  const report = runSeed(seed, {
    ...options,
    observe: (sim) => {
      cluster = sim;
      recorder = new Recorder(sim);
      options.observe?.(sim);
    },
  });
  const sim = cluster!;
  const lines: string[] = [];
  const faults = Object.keys(report.faults)
    .filter((k) => /^(network-|byzantine-|client-|forged$|twins$)/.test(k))
    .sort()
    .map((k) => `${k}=${report.faults[k]}`);
  lines.push(`seed ${seed}: ${report.replicas} replicas, byzantine [${report.byzantine.join(' ') || 'none'}]`);
  if (faults.length > 0) lines.push(`plan: ${faults.join(' ')}`);
  lines.push(...recorder!.lines);
  lines.push(`end at t=${report.ticks}:`);
  for (const h of sim.hosts) {
    const r = h.replica;
    const label = h.byzantine || h.twin ? ' (byzantine)' : '';
    if (!r) {
      lines.push(`  ${h.id}${label}: down`);
      continue;
    }
    const s = r.status();
    const evidence = s.evidence.held > 0 ? ` evidence=${s.evidence.held} (against ${s.evidence.signers.join(',')})` : '';
    lines.push(`  ${h.id}${label}: view=${s.view}${s.viewChanging ? ' view-changing' : ''} executed=${s.lastExecuted} stable=${s.stableCheckpoint.seq}${s.transferring ? ' transferring' : ''}${evidence}`);
  }
  const clients = sim.clients.map((c) => `${c.completed.length}`).join(',');
  lines.push(`clients completed ${clients} requests; ${report.requestsCommitted} requests executed; ${report.viewChanges} views entered`);
  if (report.violations.length === 0) lines.push('verdict: no violations (safety, durability, liveness)');
  else for (const v of report.violations) lines.push(`verdict: ${v.kind} ${v.check}: ${v.detail.split('\n')[0]}`);
  return { report, text: lines.join('\n'), lines };
}
