/**
 * A check of RocksDB's write-ahead log files before the database opens: the `rocksdb` binding opens
 * with paranoid_checks off and point-in-time WAL recovery, so a damaged log (a bad sector, an
 * overwritten range) makes RocksDB silently drop every write from the damage on. This reads each
 * `*.log` file in the database directory the way RocksDB's log reader does and reports a record whose
 * checksum or framing is wrong when a valid record follows it: that is lost acknowledged data, not a
 * write torn by a crash (which can only be the last one, and was never acknowledged as synced).
 *
 * The format (RocksDB db/log_format.h): 32 KiB blocks of records; a record is a masked CRC32C (4
 * bytes, little endian) of its type byte and payload, the payload length (2 bytes), the type (1
 * byte: 1 full, 2 first, 3 middle, 4 last; 5-8 the same for recycled logs, whose header carries a
 * 4-byte log number covered by the checksum); 0 is padding. A block's last 6 bytes or fewer are zero.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

const BLOCK_SIZE = 32 * 1024;
const HEADER_SIZE = 7;
const RECYCLABLE_HEADER_SIZE = 11;

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
})();

export function crc32c(data: Uint8Array, start = 0, end = data.length, seed = 0): number {
  let crc = ~seed >>> 0;
  for (let i = start; i < end; i++) crc = CRC32C_TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

/** RocksDB stores checksums masked (util/crc32c.h). */
function unmask(masked: number): number {
  const rot = (masked - 0xa282ead8) >>> 0;
  return ((rot >>> 17) | (rot << 15)) >>> 0;
}

export interface WalDamage {
  file: string;
  offset: number;
  reason: string;
}

/** Why the record at `offset` is not valid (undefined: it is), and where it ends. */
function recordAt(bytes: Uint8Array, offset: number): { problem?: string; end: number } {
  const blockEnd = offset - (offset % BLOCK_SIZE) + BLOCK_SIZE;
  const length = bytes[offset + 4]! | (bytes[offset + 5]! << 8);
  const type = bytes[offset + 6]!;
  const header = type >= 5 && type <= 8 ? RECYCLABLE_HEADER_SIZE : HEADER_SIZE;
  const end = offset + header + length;
  if (type < 1 || type > 8) return { problem: `unknown record type ${type}`, end };
  if (end > blockEnd) return { problem: `record of ${length} bytes crosses its block`, end };
  if (end > bytes.length) return { problem: 'record runs past the end of the file', end };
  const stored = (bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 24)) >>> 0;
  // The checksum covers the type byte (and a recycled log's number) and the payload.
  if (unmask(stored) !== crc32c(bytes, offset + 6, end)) return { problem: 'checksum mismatch', end };
  return { end };
}

/** True when a valid record starts somewhere in [from, blockEnd) (a cheap filter first, then the checksum). */
function validRecordIn(bytes: Uint8Array, from: number, blockEnd: number): boolean {
  for (let o = from; o + HEADER_SIZE <= Math.min(blockEnd, bytes.length); o++) {
    const type = bytes[o + 6]!;
    if (type < 1 || type > 8) continue;
    const length = bytes[o + 4]! | (bytes[o + 5]! << 8);
    if (length === 0 || o + HEADER_SIZE + length > blockEnd) continue;
    if (recordAt(bytes, o).problem === undefined) return true;
  }
  return false;
}

/**
 * Scans one log file: the first damaged record that a valid record follows (in the rest of its block
 * or in a later block), if any.
 */
export function checkWalBytes(file: string, bytes: Uint8Array): WalDamage | undefined {
  let offset = 0;
  while (offset < bytes.length) {
    const blockEnd = offset - (offset % BLOCK_SIZE) + BLOCK_SIZE;
    if (blockEnd - offset < HEADER_SIZE) {
      offset = blockEnd; // trailer
      continue;
    }
    if (offset + HEADER_SIZE > bytes.length) break; // a torn header at the very end
    if (bytes[offset + 6] === 0 && bytes[offset + 4] === 0 && bytes[offset + 5] === 0) {
      offset = blockEnd; // padding or preallocated space: nothing further in this block
      continue;
    }
    const r = recordAt(bytes, offset);
    if (r.problem === undefined) {
      offset = r.end;
      continue;
    }
    const damage: WalDamage = { file, offset, reason: r.problem };
    if (validRecordIn(bytes, offset + 1, blockEnd)) return damage;
    // Later blocks: each starts with a record (or padding), as RocksDB's reader resynchronizes there.
    for (let b = blockEnd; b + HEADER_SIZE <= bytes.length; b += BLOCK_SIZE) {
      if (recordAt(bytes, b).problem === undefined) return damage;
    }
    return undefined; // damage only at the end: a write torn by a crash, never acknowledged
  }
  return undefined;
}

/** Checks every `*.log` file of the database directory (missing directory: nothing to check). */
export async function checkWal(dir: string): Promise<WalDamage | undefined> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return undefined;
  }
  for (const name of names.filter((n) => /^\d+\.log$/.test(n)).sort()) {
    const bytes = await readFile(join(dir, name));
    const damage = checkWalBytes(name, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    if (damage) return damage;
  }
  return undefined;
}
