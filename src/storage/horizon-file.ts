/**
 * The horizon record's file (core/horizon.ts says what the record means; RocksStorage keeps it in
 * the database directory, outside the database, so that a database that lost data cannot take
 * its bound with it).
 *
 * Two fixed slots of SLOT_BYTES, written in turn in place and made durable with fdatasync: each
 * holds a generation number, the record and a checksum. A write only ever overwrites the slot that
 * does not hold the newest complete record, so a crash in the middle of one leaves the other slot,
 * the record written before, intact: a reader takes the intact slot with the higher generation.
 * The first write of each incarnation replaces the whole file atomically (a temporary file, fsync,
 * rename, fsync of the directory), which also turns a file of the earlier format (the record's
 * bytes alone) into this one; later writes cost one pwrite and one fdatasync on an open file whose
 * size and blocks never change, instead of that whole sequence (on this machine's disk, alone:
 * 1.19 -> 0.27 ms and 0.6 -> 0.13 ms of CPU per write; with four replicas writing on one disk a
 * record took 6 ms on average, three times a synced batch, and held up the next batch meanwhile).
 */
import { createHash } from 'node:crypto';
import { open as openFile, rename, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

/** The file's name in the database directory. */
export const HORIZON_FILE = 'PBFT-HORIZON';

const MAGIC = [0x50, 0x42, 0x48, 0x32]; // "PBH2"
export const SLOT_BYTES = 512;
/** magic (4) | generation (8, big-endian) | record length (2) | checksum (8) | record */
const HEADER_BYTES = 22;
/** The longest record a slot holds (an encoded horizon is about 20-40 bytes). */
export const HORIZON_RECORD_MAX = SLOT_BYTES - HEADER_BYTES;

function checksum(slot: Uint8Array, recordLength: number): Uint8Array {
  return createHash('sha256').update(slot.subarray(0, 14)).update(slot.subarray(HEADER_BYTES, HEADER_BYTES + recordLength)).digest().subarray(0, 8);
}

/** One slot: the record with its generation and checksum, SLOT_BYTES long. */
export function encodeHorizonSlot(generation: number, record: Uint8Array): Uint8Array {
  if (record.length > HORIZON_RECORD_MAX) throw new RangeError(`a horizon record holds at most ${HORIZON_RECORD_MAX} bytes, got ${record.length}`);
  if (!Number.isSafeInteger(generation) || generation < 1) throw new RangeError(`generation must be a positive integer, got ${generation}`);
  const slot = new Uint8Array(SLOT_BYTES);
  slot.set(MAGIC, 0);
  const view = new DataView(slot.buffer);
  view.setUint32(4, Math.floor(generation / 2 ** 32));
  view.setUint32(8, generation >>> 0);
  view.setUint16(12, record.length);
  slot.set(record, HEADER_BYTES);
  slot.set(checksum(slot, record.length), 14);
  return slot;
}

/** The slot's generation and record when it is intact, else undefined. */
function decodeSlot(slot: Uint8Array): { generation: number; record: Uint8Array } | undefined {
  if (slot.length !== SLOT_BYTES || MAGIC.some((b, i) => slot[i] !== b)) return undefined;
  const view = new DataView(slot.buffer, slot.byteOffset, slot.byteLength);
  const length = view.getUint16(12);
  if (length > HORIZON_RECORD_MAX) return undefined;
  const sum = checksum(slot, length);
  for (let i = 0; i < 8; i++) if (slot[14 + i] !== sum[i]) return undefined;
  return { generation: view.getUint32(4) * 2 ** 32 + view.getUint32(8), record: slot.slice(HEADER_BYTES, HEADER_BYTES + length) };
}

function hasMagic(bytes: Uint8Array, at: number): boolean {
  return MAGIC.every((b, i) => bytes[at + i] === b);
}

/**
 * The record a horizon file holds: the intact slot with the higher generation; a file of the
 * earlier format is the record itself. `error` when the file has this format but neither slot is
 * intact (both damaged: a write tears at most one).
 */
export function horizonRecordOf(file: Uint8Array): { record: Uint8Array } | { error: string } {
  if (file.length !== 2 * SLOT_BYTES || !(hasMagic(file, 0) || hasMagic(file, SLOT_BYTES))) return { record: file };
  const a = decodeSlot(file.subarray(0, SLOT_BYTES));
  const b = decodeSlot(file.subarray(SLOT_BYTES));
  const newest = a === undefined ? b : b === undefined || a.generation > b.generation ? a : b;
  if (newest === undefined) return { error: 'neither copy of the record is intact' };
  return { record: newest.record };
}

/** Writes the horizon file of one directory, for one incarnation (see the top of this file). */
export class HorizonFile {
  #file: FileHandle | undefined;
  /** The generation of the newest complete record, and the slot (0 or 1) that does not hold it. */
  #generation = 0;
  #next = 0;

  constructor(private readonly dir: string) {}

  get path(): string {
    return join(this.dir, HORIZON_FILE);
  }

  /** Replaces the record durably: after a crash the file holds this one or the one before. */
  async write(record: Uint8Array): Promise<void> {
    if (this.#file === undefined) return this.#replace(record);
    const slot = encodeHorizonSlot(this.#generation + 1, record);
    let done = 0;
    while (done < SLOT_BYTES) done += (await this.#file.write(slot, done, SLOT_BYTES - done, this.#next * SLOT_BYTES + done)).bytesWritten;
    await this.#file.datasync();
    this.#generation++;
    this.#next ^= 1;
  }

  /** The first write: the whole file, generation 1 in slot 0, atomically; then open for the next. */
  async #replace(record: Uint8Array): Promise<void> {
    const image = new Uint8Array(2 * SLOT_BYTES);
    image.set(encodeHorizonSlot(1, record), 0);
    const tmp = `${this.path}.tmp`;
    const file = await openFile(tmp, 'w', 0o600);
    try {
      await file.writeFile(image);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, this.path);
    const dir = await openFile(this.dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    this.#file = await openFile(this.path, 'r+');
    this.#generation = 1;
    this.#next = 1;
  }

  /** Closes the open file (the next write replaces the file again). */
  async close(): Promise<void> {
    const file = this.#file;
    this.#file = undefined;
    await file?.close();
  }
}
