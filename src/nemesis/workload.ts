/**
 * The nemesis workload: concurrent SDK clients (one PbftClient and one key each) doing put / get /
 * cas / delete on a few keys, every write with a value never written before, every operation
 * recorded in a History (invoke, then ok with its result, fail, or unknown) for the
 * linearizability checker (src/check/linearizability.ts).
 */
import { join } from 'node:path';
import { PbftClient } from '../client/client.ts';
import { History } from '../check/linearizability.ts';
import { CLUSTER_FILE, keyFileName } from '../crypto/keyring.ts';
import type { Prng } from '../sim/prng.ts';

export interface WorkloadOptions {
  clients: number;
  keys: number;
  /** Deadline of one operation (ms): past it the outcome is unknown. */
  opTimeoutMs: number;
  /** Negative control: the SDK accepts the first reply (SDK unsafeTestOnly.acceptFirstReply). */
  acceptFirstReply?: boolean;
}

const text = (v: string | Uint8Array | null): string | null => (v === null ? null : typeof v === 'string' ? v : Buffer.from(v).toString('utf8'));

export class Workload {
  readonly history: History;
  /** Completion times (ms since start) of operations that returned ok. */
  readonly completions: number[] = [];
  readonly outcomes = { ok: 0, fail: 0, unknown: 0 };
  private running = false;
  private readonly loops: Promise<void>[] = [];
  private readonly sdk: PbftClient[] = [];

  constructor(
    private readonly keysDir: string,
    private readonly options: WorkloadOptions,
    private readonly prng: Prng,
    private readonly now: () => number,
  ) {
    this.history = new History(now);
  }

  async start(): Promise<void> {
    for (let c = 0; c < this.options.clients; c++) {
      this.sdk.push(
        await PbftClient.connect({
          cluster: join(this.keysDir, CLUSTER_FILE),
          key: join(this.keysDir, keyFileName('client', c)),
          timeoutMs: this.options.opTimeoutMs,
          ...(this.options.acceptFirstReply === true ? { unsafeTestOnly: { acceptFirstReply: true } } : {}),
        }),
      );
    }
    this.running = true;
    for (let c = 0; c < this.sdk.length; c++) this.loops.push(this.loop(c, this.prng.fork()));
  }

  private async loop(c: number, prng: Prng): Promise<void> {
    const client = this.sdk[c]!;
    let written = 0;
    const lastSeen = new Map<string, string | null>();
    while (this.running) {
      const key = `k${prng.int(this.options.keys)}`;
      const roll = prng.int(100);
      const fresh = (): string => `c${c}-${++written}`;
      if (roll < 40) {
        const h = this.history.invoke(c, key, { type: 'get' });
        await client.get(key).then(
          (v) => {
            h.ok(text(v));
            lastSeen.set(key, text(v));
            this.done('ok');
          },
          (err) => this.done(h.error(err)),
        );
      } else if (roll < 70) {
        const value = fresh();
        const h = this.history.invoke(c, key, { type: 'put', value });
        await client.put(key, value).then(
          () => {
            h.ok(undefined);
            this.done('ok');
          },
          (err) => this.done(h.error(err)),
        );
      } else if (roll < 90) {
        const expected = lastSeen.get(key) ?? null;
        const next = fresh();
        const h = this.history.invoke(c, key, { type: 'cas', expected, next });
        await client.cas(key, expected, next).then(
          (r) => {
            const current = text(r.current);
            h.ok({ swapped: r.swapped, current });
            lastSeen.set(key, current);
            this.done('ok');
          },
          (err) => this.done(h.error(err)),
        );
      } else {
        const h = this.history.invoke(c, key, { type: 'del' });
        await client.del(key).then(
          (existed) => {
            h.ok(existed);
            lastSeen.set(key, null);
            this.done('ok');
          },
          (err) => this.done(h.error(err)),
        );
      }
    }
  }

  private done(outcome: 'ok' | 'fail' | 'unknown'): void {
    this.outcomes[outcome]++;
    if (outcome === 'ok') this.completions.push(this.now());
  }

  /** Stops issuing; waits for the operations in flight (each ends within the op timeout). */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    await Promise.all(this.sdk.map((c) => c.close().catch(() => undefined)));
  }
}
