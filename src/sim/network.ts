/**
 * Simulated network: every message is delayed by a random number of ticks (which reorders), may be
 * lost or duplicated, and directed links can be cut (partitions, send-only / receive-only nodes).
 * Nodes are numbered: replicas 0..n-1, clients n..n+clients-1.
 */
import type { Prng } from './prng.ts';

export interface NetworkFaults {
  /** Probability that a message is dropped. */
  loss: number;
  /** Probability that a message is delivered twice (the copy later). */
  duplication: number;
  delayTicksMin: number;
  delayTicksMax: number;
}

export const CALM_NETWORK: NetworkFaults = { loss: 0, duplication: 0, delayTicksMin: 1, delayTicksMax: 3 };

export interface InFlight {
  at: number;
  order: number;
  /** Position in delivery order (set when delivered). */
  delivered?: number;
  from: number;
  to: number;
  bytes: Uint8Array;
}

/** A binary min-heap by (at, order): deterministic delivery order. */
class Heap {
  private readonly items: InFlight[] = [];
  get size(): number {
    return this.items.length;
  }
  peek(): InFlight | undefined {
    return this.items[0];
  }
  private less(a: InFlight, b: InFlight): boolean {
    return a.at < b.at || (a.at === b.at && a.order < b.order);
  }
  push(x: InFlight): void {
    const a = this.items;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): InFlight | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

export class SimNetwork {
  faults: NetworkFaults = CALM_NETWORK;
  /** Directed links that drop everything: "from>to". */
  private readonly cut = new Set<string>();
  private readonly heap = new Heap();
  private order = 0;
  sent = 0;
  dropped = 0;
  duplicated = 0;
  /** Recently delivered messages, for replay attacks. */
  readonly recent: InFlight[] = [];
  deliveredCount = 0;

  /** Drops the messages it returns true for (tests that aim a fault at one kind of message). */
  dropIf?: (from: number, to: number, bytes: Uint8Array) => boolean;

  constructor(private readonly prng: Prng) {}

  cutLink(from: number, to: number): void {
    this.cut.add(`${from}>${to}`);
  }

  isCut(from: number, to: number): boolean {
    return this.cut.has(`${from}>${to}`);
  }

  heal(): void {
    this.cut.clear();
  }

  get cutLinks(): number {
    return this.cut.size;
  }

  send(now: number, from: number, to: number, bytes: Uint8Array): void {
    this.sent++;
    if (this.isCut(from, to) || this.dropIf?.(from, to, bytes) === true || this.prng.chance(this.faults.loss)) {
      this.dropped++;
      return;
    }
    this.enqueue(now, from, to, bytes);
    if (this.prng.chance(this.faults.duplication)) {
      this.duplicated++;
      this.enqueue(now + this.prng.range(0, 2 * this.faults.delayTicksMax), from, to, bytes);
    }
  }

  /** Re-injects a message exactly as sent before (a replay); still subject to cuts. */
  replay(now: number, m: InFlight): void {
    if (!this.isCut(m.from, m.to)) this.enqueue(now, m.from, m.to, m.bytes);
  }

  private enqueue(now: number, from: number, to: number, bytes: Uint8Array): void {
    const delay = this.prng.range(this.faults.delayTicksMin, this.faults.delayTicksMax);
    this.heap.push({ at: now + delay, order: this.order++, from, to, bytes });
  }

  /** Messages due at or before `now`, in delivery order. */
  *due(now: number): Generator<InFlight> {
    for (;;) {
      const top = this.heap.peek();
      if (!top || top.at > now) return;
      const m = this.heap.pop()!;
      m.delivered = this.deliveredCount++;
      if (this.recent.length >= 512) this.recent.splice(0, 256);
      this.recent.push(m);
      yield m;
    }
  }

  get inFlight(): number {
    return this.heap.size;
  }
}
