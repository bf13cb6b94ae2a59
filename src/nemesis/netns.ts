/**
 * Real networks for real faults: one Linux network namespace per replica, each with its own address
 * on a veth pair attached to a bridge in the runner's namespace (which the clients use). Needs root
 * and iproute2 (`ip`, `tc`); `probeNamespaces` says why not where they are missing.
 *
 * Faults, with nothing but iproute2:
 *   cut(a, b)        a's packets to b are dropped (a blackhole route in a's namespace): one way
 *   heal()           every cut removed
 *   netem(i, spec)   delay, jitter, loss, duplication on everything replica i sends (tc netem); on a
 *                    kernel without sch_netem (`netemKind()` says), a slow link instead: tc tbf rate
 *                    limiting, whose queue delays and drops what exceeds it
 *   clearNetem()     every netem removed
 * Everything made here carries a random tag (namespaces pbft-<tag>-<i>, bridge pbr<tag>) and is
 * removed by `destroy()`, which the runner calls on every exit path it controls (also Ctrl-C).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface CommandResult {
  ok: boolean;
  out: string;
}

export function run(cmd: string, args: readonly string[]): CommandResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) return { ok: false, out: r.error.message };
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

function must(cmd: string, args: readonly string[]): void {
  const r = run(cmd, args);
  if (!r.ok) throw new Error(`${cmd} ${args.join(' ')}: ${r.out}`);
}

/** Undefined when namespaces can be made here; otherwise why not. */
export function probeNamespaces(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  if (!run('tc', ['-V']).ok) return '`tc` (iproute2) is missing';
  const name = `pbft-probe-${randomBytes(3).toString('hex')}`;
  const r = run('ip', ['netns', 'add', name]);
  if (!r.ok) return `cannot create a network namespace: ${r.out}`;
  run('ip', ['netns', 'del', name]);
  return undefined;
}

export interface NetemSpec {
  delayMs?: number;
  jitterMs?: number;
  lossPercent?: number;
  duplicatePercent?: number;
  /** Only where netem is missing: a tbf rate limit (kbit/s) and its queue's latency bound (ms). */
  rateKbit?: number;
  latencyMs?: number;
}

/** Which link-degrading qdisc this kernel has: 'netem', else 'tbf', else undefined. */
export function netemKind(): 'netem' | 'tbf' | undefined {
  const ns = `pbft-qprobe-${randomBytes(3).toString('hex')}`;
  if (!run('ip', ['netns', 'add', ns]).ok) return undefined;
  try {
    if (!run('ip', ['-n', ns, 'link', 'add', 'qa', 'type', 'veth', 'peer', 'name', 'qb']).ok) return undefined;
    run('ip', ['-n', ns, 'link', 'set', 'qa', 'up']);
    if (run('tc', ['-n', ns, 'qdisc', 'add', 'dev', 'qa', 'root', 'netem', 'delay', '1ms']).ok) return 'netem';
    if (run('tc', ['-n', ns, 'qdisc', 'add', 'dev', 'qa', 'root', 'tbf', 'rate', '1mbit', 'burst', '32kbit', 'latency', '100ms']).ok) return 'tbf';
    return undefined;
  } finally {
    run('ip', ['netns', 'del', ns]);
  }
}

export function describeNetem(s: NetemSpec): string {
  if (s.rateKbit) return `slow link ${s.rateKbit} kbit/s, queue up to ${s.latencyMs ?? 0} ms`;
  const parts: string[] = [];
  if (s.delayMs) parts.push(`delay ${s.delayMs}ms${s.jitterMs ? ` ±${s.jitterMs}ms` : ''}`);
  if (s.lossPercent) parts.push(`loss ${s.lossPercent}%`);
  if (s.duplicatePercent) parts.push(`duplicate ${s.duplicatePercent}%`);
  return parts.join(', ') || 'none';
}

export class Namespaces {
  readonly tag: string;
  readonly names: string[] = [];
  readonly bridge: string;
  /** 10.<a>.<b>: replicas at .11, .12, ...; the bridge (the runner) at .1. */
  readonly subnet: string;
  private readonly cuts = new Set<string>();
  private readonly netems = new Set<number>();
  private made = false;

  constructor(readonly count: number) {
    if (count > 200) throw new RangeError('at most 200 replicas');
    this.tag = randomBytes(2).toString('hex');
    this.bridge = `pbr${this.tag}`;
    const n = parseInt(this.tag, 16);
    this.subnet = `10.${232 + (n % 16)}.${n >> 8}`;
  }

  address(i: number): string {
    return `${this.subnet}.${11 + i}`;
  }

  get gateway(): string {
    return `${this.subnet}.1`;
  }

  private inner(i: number): string {
    return `pi${this.tag}${i}`;
  }

  /** `ip netns exec <ns>`: the prefix that runs a command in replica i's namespace. */
  exec(i: number): string[] {
    return ['ip', 'netns', 'exec', this.names[i]!];
  }

  create(): void {
    this.made = true;
    must('ip', ['link', 'add', this.bridge, 'type', 'bridge']);
    must('ip', ['addr', 'add', `${this.gateway}/24`, 'dev', this.bridge]);
    must('ip', ['link', 'set', this.bridge, 'up']);
    for (let i = 0; i < this.count; i++) {
      const ns = `pbft-${this.tag}-${i}`;
      const host = `pv${this.tag}${i}`;
      must('ip', ['netns', 'add', ns]);
      this.names.push(ns);
      must('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', this.inner(i)]);
      must('ip', ['link', 'set', this.inner(i), 'netns', ns]);
      must('ip', ['link', 'set', host, 'master', this.bridge]);
      must('ip', ['link', 'set', host, 'up']);
      must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      must('ip', ['-n', ns, 'addr', 'add', `${this.address(i)}/24`, 'dev', this.inner(i)]);
      must('ip', ['-n', ns, 'link', 'set', this.inner(i), 'up']);
    }
  }

  /** Replica `from`'s packets to `to` (a replica index, or 'clients' for the runner) are dropped. */
  cut(from: number, to: number | 'clients'): void {
    const dst = to === 'clients' ? this.gateway : this.address(to);
    const key = `${from}>${dst}`;
    if (this.cuts.has(key)) return;
    must('ip', ['-n', this.names[from]!, 'route', 'add', 'blackhole', `${dst}/32`]);
    this.cuts.add(key);
  }

  heal(): void {
    for (const key of this.cuts) {
      const [from, dst] = key.split('>') as [string, string];
      run('ip', ['-n', this.names[Number(from)]!, 'route', 'del', 'blackhole', `${dst}/32`]);
    }
    this.cuts.clear();
  }

  netem(i: number, spec: NetemSpec): void {
    if (spec.rateKbit) {
      must('tc', ['-n', this.names[i]!, 'qdisc', this.netems.has(i) ? 'change' : 'add', 'dev', this.inner(i), 'root', 'tbf', 'rate', `${spec.rateKbit}kbit`, 'burst', '16kbit', 'latency', `${spec.latencyMs ?? 100}ms`]);
      this.netems.add(i);
      return;
    }
    const args = ['-n', this.names[i]!, 'qdisc', this.netems.has(i) ? 'change' : 'add', 'dev', this.inner(i), 'root', 'netem'];
    if (spec.delayMs) args.push('delay', `${spec.delayMs}ms`, ...(spec.jitterMs ? [`${spec.jitterMs}ms`] : []));
    if (spec.lossPercent) args.push('loss', `${spec.lossPercent}%`);
    if (spec.duplicatePercent) args.push('duplicate', `${spec.duplicatePercent}%`);
    must('tc', args);
    this.netems.add(i);
  }

  clearNetem(): void {
    for (const i of this.netems) run('tc', ['-n', this.names[i]!, 'qdisc', 'del', 'dev', this.inner(i), 'root']);
    this.netems.clear();
  }

  /** Removes every namespace (their veth ends go with them) and the bridge; returns what is left. */
  destroy(): string[] {
    if (!this.made) return [];
    for (const ns of this.names) run('ip', ['netns', 'del', ns]);
    run('ip', ['link', 'del', this.bridge]);
    const left: string[] = [];
    const list = run('ip', ['netns', 'list']).out.split('\n').map((l) => l.split(' ')[0]);
    for (const ns of this.names) if (list.includes(ns)) left.push(ns);
    if (run('ip', ['link', 'show', this.bridge]).ok) left.push(this.bridge);
    this.made = false;
    return left;
  }
}
