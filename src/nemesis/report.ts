/**
 * The report of a nemesis run: operations by outcome, anomalies, availability (completed operations
 * per second as a text sparkline, the longest window with none), each fault with the time until an
 * operation completed again and the longest time a replica stayed out of the others' view after it,
 * every replica's state digest at a common checkpoint, and the command that replays the schedule.
 */
export interface FaultRecord {
  kind: string;
  targets: number[];
  description: string;
  /** Milliseconds since the start of the run. */
  start: number;
  end?: number;
  /** From the end of the fault to the next completed operation. */
  recoveryMs?: number;
  /** The longest time any replica was out of the view most replicas were in, after the fault ended. */
  outOfViewMs?: number;
}

export interface Report {
  seed: number;
  replicas: number;
  seconds: number;
  network: 'namespaces' | 'loopback';
  nemeses: string[];
  notes: string[];
  outcomes: { ok: number; fail: number; unknown: number };
  /** Completion times (ms) of the operations that returned. */
  completions: number[];
  faults: FaultRecord[];
  anomalies: number;
  violation?: string;
  digests: Array<{ id: number; seq: number; digest: string; lastExecuted: number }>;
  /** Replicas whose process exited on its own during the run. */
  crashed: number[];
  command: string;
}

const BARS = ' ▁▂▃▄▅▆▇█';

export function sparkline(perSecond: number[]): string {
  const max = Math.max(1, ...perSecond);
  return perSecond.map((v) => (v === 0 ? '·' : BARS[Math.max(1, Math.round((v / max) * (BARS.length - 1)))]!)).join('');
}

/** Completed operations per second, and the longest gap (ms) between completions after the first. */
export function availability(completions: number[], seconds: number): { perSecond: number[]; longestGapMs: number; longestGapAt: number } {
  const perSecond = new Array<number>(Math.max(1, Math.ceil(seconds))).fill(0);
  for (const t of completions) {
    const s = Math.floor(t / 1000);
    if (s < perSecond.length) perSecond[s]!++;
  }
  let longestGapMs = 0;
  let longestGapAt = 0;
  const sorted = [...completions].sort((a, b) => a - b);
  for (let i = 1; i < sorted.length; i++) {
    const gap = sorted[i]! - sorted[i - 1]!;
    if (gap > longestGapMs) [longestGapMs, longestGapAt] = [gap, sorted[i - 1]!];
  }
  return { perSecond, longestGapMs: Math.round(longestGapMs), longestGapAt: Math.round(longestGapAt) };
}

export function formatReport(r: Report): string {
  const lines: string[] = [];
  const total = r.outcomes.ok + r.outcomes.fail + r.outcomes.unknown;
  const a = availability(r.completions, r.seconds);
  const digestsAgree = new Set(r.digests.map((d) => `${d.seq}:${d.digest}`)).size === 1;
  lines.push(`nemesis report: ${r.replicas} replicas (${r.network}), ${r.seconds} s, seed ${r.seed}, faults: ${r.nemeses.join(', ') || 'none'}`);
  for (const n of r.notes) lines.push(`  note: ${n}`);
  lines.push(`operations: ${total} (ok ${r.outcomes.ok}, fail ${r.outcomes.fail}, unknown outcome ${r.outcomes.unknown})`);
  lines.push(`anomalies: ${r.anomalies}${r.anomalies === 0 ? ' (the history is linearizable)' : ''}`);
  if (r.violation) lines.push(r.violation);
  lines.push(`availability (ops/s, one character per second, max ${Math.max(0, ...a.perSecond)}):`);
  lines.push(`  ${sparkline(a.perSecond)}`);
  lines.push(`longest window with no completed operation: ${(a.longestGapMs / 1000).toFixed(2)} s (from ${(a.longestGapAt / 1000).toFixed(1)} s)`);
  lines.push(`faults: ${r.faults.length}`);
  for (const f of r.faults) {
    const rec = f.recoveryMs === undefined ? 'no operation completed before the next fault' : `ops again after ${(f.recoveryMs / 1000).toFixed(2)} s`;
    const view = f.outOfViewMs === undefined ? '' : `, longest out of the others' view ${(f.outOfViewMs / 1000).toFixed(2)} s`;
    lines.push(`  ${(f.start / 1000).toFixed(1).padStart(6)} s  ${f.description}: ${rec}${view}`);
  }
  const worstView = Math.max(0, ...r.faults.map((f) => f.outOfViewMs ?? 0));
  const worstRecovery = Math.max(0, ...r.faults.map((f) => f.recoveryMs ?? 0));
  lines.push(`worst after a fault: ops again after ${(worstRecovery / 1000).toFixed(2)} s; a replica out of the others' view ${(worstView / 1000).toFixed(2)} s`);
  lines.push(`state digests at a common checkpoint: ${digestsAgree ? 'agree' : 'DIFFER'}`);
  for (const d of r.digests) lines.push(`  replica ${d.id}: checkpoint ${d.seq} ${d.digest.slice(0, 16)} (executed ${d.lastExecuted})`);
  lines.push(`replicas that crashed on their own: ${r.crashed.length === 0 ? 'none' : r.crashed.join(', ')}`);
  lines.push(`replay: ${r.command}`);
  return lines.join('\n') + '\n';
}
