/**
 * The execution record beside the application: the per-client reply cache (the last executed
 * timestamp of each client and its result) and the agreed time of the last executed batch.
 * It is part of the replicated state (covered by checkpoint digests, moved by state transfer),
 * which is what makes execution at-most-once across view changes and state transfers, and what
 * keeps the agreed time monotonic for a replica that restarts or installs a checkpoint it fetched.
 *
 * Canonical encoding: u64 agreed time (ms), u32 count, then per client in ascending id order:
 *   u32 id, u64 timestamp, u32 result length, result bytes.
 */
export interface ClientRecord {
  timestamp: number;
  result: Uint8Array;
}

export class ClientTable {
  readonly records = new Map<number, ClientRecord>();
  /**
   * The agreed time of the last executed batch (ms since the Unix epoch; 0 before the first):
   * batches execute with the later of their proposed time and this one (normal.ts executeBatch).
   */
  timeMs = 0;

  get(client: number): ClientRecord | undefined {
    return this.records.get(client);
  }

  set(client: number, record: ClientRecord): void {
    this.records.set(client, record);
  }

  /** Replaces the whole record with `other`'s (a checkpoint restored or transferred). */
  assign(other: ClientTable): void {
    this.records.clear();
    for (const [c, r] of other.records) this.records.set(c, r);
    this.timeMs = other.timeMs;
  }

  encode(): Uint8Array {
    const ids = [...this.records.keys()].sort((a, b) => a - b);
    let len = 12;
    for (const id of ids) len += 16 + this.records.get(id)!.result.length;
    const out = new Uint8Array(len);
    const view = new DataView(out.buffer);
    view.setBigUint64(0, BigInt(this.timeMs));
    view.setUint32(8, ids.length);
    let off = 12;
    for (const id of ids) {
      const r = this.records.get(id)!;
      view.setUint32(off, id);
      view.setBigUint64(off + 4, BigInt(r.timestamp));
      view.setUint32(off + 12, r.result.length);
      out.set(r.result, off + 16);
      off += 16 + r.result.length;
    }
    return out;
  }

  /** Parses canonical bytes; undefined if malformed or not canonical. */
  static decode(bytes: Uint8Array, isKnownClient: (id: number) => boolean): ClientTable | undefined {
    if (bytes.length < 12) return undefined;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const time = view.getBigUint64(0);
    if (time > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    const count = view.getUint32(8);
    const table = new ClientTable();
    table.timeMs = Number(time);
    let off = 12;
    let prev = -1;
    for (let i = 0; i < count; i++) {
      if (off + 16 > bytes.length) return undefined;
      const id = view.getUint32(off);
      const ts = view.getBigUint64(off + 4);
      const len = view.getUint32(off + 12);
      if (id <= prev || !isKnownClient(id) || ts > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
      if (off + 16 + len > bytes.length) return undefined;
      table.records.set(id, { timestamp: Number(ts), result: bytes.slice(off + 16, off + 16 + len) });
      off += 16 + len;
      prev = id;
    }
    return off === bytes.length ? table : undefined;
  }
}
