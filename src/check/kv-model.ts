/**
 * The sequential specification of one key of the key-value store (src/app/kv.ts), as the
 * linearizability checker (./linearizability.ts) uses it: values interned to small integers per key,
 * operations compiled to a kind and up to four integer arguments, and a step function from state to
 * state (or -1 when the operation cannot take effect in that state with the result it reported).
 *
 * Semantics, as the store implements them (src/app/kv.ts `applyOwned`), for a key that starts absent:
 *   put(v)                 -> ok; the key holds v
 *   get                    -> the value, or null when absent
 *   del                    -> existed: whether the key held a value; the key is absent after
 *   cas(expected, next)    -> if the value equals `expected` (null = absent): swapped = true and the
 *                             key holds `next` (null = absent), else swapped = false, no change.
 *                             `current` is the value AFTER the operation (src/app/kv-ops.ts, CasResult
 *                             in src/client/client.ts): `next` when swapped, the unchanged value
 *                             otherwise. (So the value before is `expected` when swapped, `current`
 *                             when not.)
 *
 * Pure: no imports, no I/O.
 */

/** A history operation (values are strings in histories; the runner writes unique strings). */
export type KvHistoryOp =
  | { type: 'put'; value: string }
  | { type: 'get' }
  | { type: 'del' }
  | { type: 'cas'; expected: string | null; next: string | null };

export interface CasOutcome {
  swapped: boolean;
  /** The value after the operation (see the header). */
  current: string | null;
}

/** What an operation returned: put nothing, get the value or null, del `existed`, cas a CasOutcome. */
export type KvHistoryResult = undefined | string | null | boolean | CasOutcome;

/** The result type of an operation type. */
export type ResultOf<O extends KvHistoryOp> = O extends { type: 'put' }
  ? void
  : O extends { type: 'get' }
    ? string | null
    : O extends { type: 'del' }
      ? boolean
      : CasOutcome;

// --- states ---------------------------------------------------------------------------------------

/** The key is absent. */
export const ABSENT = 0;
/**
 * The key holds a value that nobody ever reads: written by an unknown-outcome write whose value no
 * operation observes (see "unread writes" in ./linearizability.ts). Only a del that reported
 * existed = true may follow it.
 */
export const UNREAD = 1;
/** Any value no operation under check reads (they are indistinguishable; see compile in ./linearizability.ts). */
export const OTHER = 2;
/** Interned values start here. */
export const FIRST_VALUE = 3;

// --- compiled operation kinds -----------------------------------------------------------------------

/** put(a), completed. */
export const K_PUT = 0;
/** get, completed, returned value a. */
export const K_GET = 1;
/** del, completed, reported existed = (a === 1). */
export const K_DEL = 2;
/** cas(expected a, next b), completed, reported swapped = (c === 1), current d. */
export const K_CAS = 3;
/** put(a), outcome unknown: only linearized where it changes the value (elsewhere it may as well be omitted). */
export const K_PUT_MAYBE = 4;
/** del, outcome unknown: only linearized where the key holds a value. */
export const K_DEL_MAYBE = 5;
/** cas(expected a, next b), outcome unknown: only linearized where it swaps (a failed cas changes nothing). */
export const K_CAS_MAYBE = 6;
/** An unknown-outcome write of a value nobody reads: absent -> UNREAD. */
export const K_UNREAD_WRITE = 7;
/** del, completed, result not used (windows of violations drop results): the key is absent after. */
export const K_DEL_ANY = 8;
/** cas(expected a, next b), completed, result not used: swaps if the value is a. */
export const K_CAS_ANY = 9;

export const KIND_NAMES = ['put', 'get', 'del', 'cas', 'put?', 'del?', 'cas?', 'unread-write', 'del (result unknown)', 'cas (result unknown)'] as const;

/**
 * The state after an operation of kind `kind` with arguments a..d takes effect in `state`, or -1 if
 * it cannot (its reported result contradicts the state, or, for unknown-outcome operations, it would
 * change nothing or serve no purpose there).
 */
export function step(state: number, kind: number, a: number, b: number, c: number, d: number): number {
  // UNREAD is only ever followed by the del that needed a value to exist (see K_UNREAD_WRITE).
  if (state === UNREAD) return kind === K_DEL && a === 1 ? ABSENT : -1;
  switch (kind) {
    case K_PUT:
      return a;
    case K_GET:
      return state === a ? state : -1;
    case K_DEL:
      return (state !== ABSENT) === (a === 1) ? ABSENT : -1;
    case K_CAS:
      if (state === a) return c === 1 && d === b ? b : -1;
      return c === 0 && d === state ? state : -1;
    case K_PUT_MAYBE:
      return state !== a ? a : -1;
    case K_DEL_MAYBE:
      return state !== ABSENT ? ABSENT : -1;
    case K_CAS_MAYBE:
      return state === a && a !== b ? b : -1;
    case K_UNREAD_WRITE:
      return state === ABSENT ? UNREAD : -1;
    case K_DEL_ANY:
      return ABSENT;
    case K_CAS_ANY:
      return state === a ? b : state;
    default:
      return -1;
  }
}

/** Interns the values of one key: null -> ABSENT, strings -> FIRST_VALUE, FIRST_VALUE + 1, ... */
export class ValueTable {
  private readonly ids = new Map<string, number>();
  private readonly names: string[] = [];

  id(v: string | null): number {
    if (v === null) return ABSENT;
    let id = this.ids.get(v);
    if (id === undefined) {
      id = FIRST_VALUE + this.names.length;
      this.ids.set(v, id);
      this.names.push(v);
    }
    return id;
  }

  /** The id of a value seen before, or undefined. */
  lookup(v: string | null): number | undefined {
    return v === null ? ABSENT : this.ids.get(v);
  }

  value(id: number): string | null {
    return id >= FIRST_VALUE ? (this.names[id - FIRST_VALUE] ?? null) : null;
  }

  get size(): number {
    return FIRST_VALUE + this.names.length;
  }

  /** A state for people: "absent", a JSON string, or a description of UNREAD / OTHER. */
  describe(id: number): string {
    if (id === ABSENT) return 'absent';
    if (id === UNREAD) return 'a value of an unknown-outcome write that nobody reads';
    if (id === OTHER) return 'a value no operation here reads';
    return JSON.stringify(this.value(id));
  }
}

/** Why `step` refused, in words (for the explanation of a violation). `name` renders a state id. */
export function whyNot(state: number, kind: number, a: number, b: number, c: number, d: number, name: (id: number) => string): string {
  if (state === UNREAD && !(kind === K_DEL && a === 1)) {
    return `the key may only hold an unread value here if a del with existed=true removes it next`;
  }
  switch (kind) {
    case K_GET:
      return `it returned ${a === ABSENT ? 'null' : name(a)} but the key is ${state === ABSENT ? 'absent' : `${name(state)}`}`;
    case K_DEL:
      return a === 1 ? `it reported existed=true but the key is absent` : `it reported existed=false but the key holds ${name(state)}`;
    case K_CAS:
      if (state === a) {
        return c === 1
          ? `it reported current=${d === ABSENT ? 'null' : name(d)} after swapping to ${b === ABSENT ? 'null' : name(b)}`
          : `it reported swapped=false but the key ${state === ABSENT ? 'is absent' : `holds ${name(state)}`}, which equals expected`;
      }
      return c === 1
        ? `it reported swapped=true but the key ${state === ABSENT ? 'is absent' : `holds ${name(state)}`}, not expected ${a === ABSENT ? 'null' : name(a)}`
        : `it reported current=${d === ABSENT ? 'null' : name(d)} but the key ${state === ABSENT ? 'is absent' : `holds ${name(state)}`}`;
    case K_PUT_MAYBE:
    case K_DEL_MAYBE:
    case K_CAS_MAYBE:
    case K_UNREAD_WRITE:
      return 'its outcome is unknown and taking effect here would change nothing that helps';
    default:
      return 'it cannot take effect here';
  }
}
