/**
 * A deliberately simple sequential model of the key-value store: one Map, no partitions, no
 * caching. Checkers feed it the agreed order of operations and compare its results with what
 * the replicas answered. It shares only the types, limits and error messages with the store.
 */
import {
  KEY_BYTES_MAX,
  VALUE_BYTES_MAX,
  kvError,
  type KvErrorCode,
  type KvOp,
  type KvResult,
  type Value,
} from '../app/kv-ops.ts';

const encoder = new TextEncoder();

function utf8Length(s: string): number {
  return encoder.encode(s).length;
}

function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
      else return true;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return true;
    }
  }
  return false;
}

function sameValue(a: Value | null, b: Value | null): boolean {
  if (a === null || b === null) return a === null && b === null;
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function copy(v: Value): Value {
  return typeof v === 'string' ? v : Uint8Array.from(v);
}

function valueProblem(v: Value | null): KvErrorCode | null {
  if (v === null) return null;
  if (typeof v === 'string') {
    if (hasLoneSurrogate(v)) return 'MALFORMED_OP';
    return utf8Length(v) > VALUE_BYTES_MAX ? 'VALUE_TOO_LARGE' : null;
  }
  return v.length > VALUE_BYTES_MAX ? 'VALUE_TOO_LARGE' : null;
}

export class KvModel {
  private readonly data = new Map<string, Value>();

  /** Applies one operation in sequence; same semantics and results as KvStore. */
  apply(op: KvOp): KvResult {
    if (hasLoneSurrogate(op.key)) return kvError('MALFORMED_OP');
    if (op.key === '') return kvError('KEY_EMPTY');
    if (utf8Length(op.key) > KEY_BYTES_MAX) return kvError('KEY_TOO_LONG');
    if (op.type === 'put') {
      const problem = valueProblem(op.value);
      if (problem !== null) return kvError(problem);
    }
    if (op.type === 'cas') {
      const problem = valueProblem(op.expected) ?? valueProblem(op.next);
      if (problem !== null) return kvError(problem);
    }

    const current = this.data.has(op.key) ? copy(this.data.get(op.key)!) : null;
    switch (op.type) {
      case 'put':
        this.data.set(op.key, copy(op.value));
        return { type: 'put' };
      case 'get':
        return { type: 'get', value: current };
      case 'del':
        return { type: 'del', existed: this.data.delete(op.key) };
      case 'cas':
        if (!sameValue(current, op.expected)) return { type: 'cas', swapped: false, current };
        if (op.next === null) this.data.delete(op.key);
        else this.data.set(op.key, copy(op.next));
        return { type: 'cas', swapped: true, current: op.next === null ? null : copy(op.next) };
    }
  }

  get size(): number {
    return this.data.size;
  }

  get(key: string): Value | null {
    const v = this.data.get(key);
    return v === undefined ? null : copy(v);
  }

  /** All keys, in no particular order. */
  keys(): string[] {
    return [...this.data.keys()];
  }
}
