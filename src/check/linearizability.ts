/**
 * A linearizability checker for histories of the key-value store (put / get / del / cas, see
 * ./kv-model.ts for their sequential semantics), and a recorder to write such histories.
 *
 * Pure: no I/O, no clock, no randomness (the recorder takes the caller's clock). Used by tests and
 * by a nemesis runner.
 *
 * ## Histories
 *
 * An array of `Op` records: which client invoked which operation on which key, when (`invoke`,
 * `complete`: numbers from one clock), and how it ended:
 *
 *   'ok'       it returned `result` (put: nothing; get: value | null; del: existed; cas:
 *              { swapped, current } with `current` the value AFTER the cas, as the store reports it).
 *              It took effect once, at some instant between invoke and complete.
 *   'fail'     it certainly did not take effect, and never will. Dropped before checking.
 *   'unknown'  it may have taken effect at any instant after invoke (no upper bound: its completion
 *              counts as +infinity, whatever `complete` says), or never. An unknown get constrains
 *              nothing and is dropped.
 *
 * Every key starts absent (the runner uses fresh keys). Times: `a` precedes `b` in real time iff
 * a.complete < b.invoke; equal times count as concurrent (the lenient reading of a coarse clock).
 *
 * ### Which SDK errors mean 'fail' and which 'unknown' (`outcomeOfError`)
 *
 * From src/client/errors.ts and src/client/client.ts:
 *
 *   'fail'     KvError (codes MALFORMED_OP, KEY_EMPTY, KEY_TOO_LONG, VALUE_TOO_LARGE): f+1 replicas
 *              agreed the store executed it as an error result, and the store checks those limits
 *              before touching any state (src/app/kv.ts `limitError`): no effect.
 *              REQUEST_TOO_LARGE: refused by the SDK before signing or by f+1 replicas; "it was not
 *              executed and will not be".
 *              CONNECT_FAILED, BAD_CONFIG: raised by connect()/configuration, before any request
 *              exists (only seen here if the runner folds connecting into an operation).
 *   'unknown'  TIMEOUT_OUTCOME_UNKNOWN: the request may have been ordered and executed (now or later) without f+1
 *              matching replies reaching the client in time.
 *              QUORUM_FAILURE: more than f replicas are faulty; anything may have happened.
 *              CLIENT_CLOSED: the request may already have been sent when the client closed.
 *              UNEXPECTED_RESULT: f+1 replicas agreed on a result that is not one of this
 *              operation: it was executed, with an effect we cannot read (the runner should also
 *              report this as a bug on its own).
 *              Anything else (not a PbftClientError): unknown, the safe side.
 *
 * ## The check
 *
 * A KV history is linearizable iff each key's sub-history is (every operation touches one key), so
 * keys are checked separately. Each key is checked with the algorithm of Wing & Gong as improved by
 * Lowe (the one Porcupine uses): the calls and returns of the operations form a doubly linked list
 * in time order; a depth-first search repeatedly linearizes one of the operations whose call comes
 * before the first return still in the list (if the model accepts it from the current state),
 * removes its call and return from the list, and backtracks when it meets a return (that operation
 * had to be linearized by then). Configurations (set of linearized operations as a bitset, model
 * state) already explored are memoized and never explored again. The search succeeds when every
 * operation with a completion bound is linearized (those left are unknown-outcome operations, which
 * may take effect later or never).
 *
 * Reductions that keep the search exact (each is argued where it is made; `reductions: false`
 * turns them off, and the tests compare both on many histories):
 *   - Implied order (impliedOrder): with unique values, a value's only writer precedes its
 *     observers, and every operation known to leave another value and preceding an observer in real
 *     time precedes the writer, etc. The search respects these edges, and a linear-time cycle check
 *     over them and real-time order rejects most stale and future reads without any search.
 *   - Values nobody reads are one state (OTHER): only whether the key exists can be seen of them.
 *   - Unknown-outcome operations are tried after the completed ones (same candidates, other order),
 *     only where they change the state, and only if the operation right after them depends on the
 *     state they leave (FRESH); one that nothing could follow so is dropped.
 *   - Unknown-outcome operations with the same effect (all unknown dels, ...) form a class: only its
 *     earliest unused member is tried, and it keeps no more members than it has possible followers.
 *     A memo entry that failed with fewer members of each class used rules out one with more.
 *   - "Unread writes": an unknown-outcome write whose value no operation observes can matter only by
 *     making the key exist for a del that reports existed=true; it is tried only from absent and
 *     only right before such a del (state UNREAD).
 *   - An unknown-outcome write of a value written by no other operation and observed by a completed
 *     operation must take effect before that observer completes: it gets that completion bound.
 *
 * Cost: exponential in the worst case (the problem is NP-complete), in practice roughly linear in
 * the history with a factor that grows with the concurrency per key. bench/linearizability.ts
 * measures it: 10,000 operations, 5 keys, 16 clients, ~300 unknown-outcome writes take well under a
 * second; a single key with 16 concurrent clients is the hard case (seconds per 10,000).
 * `maxConfigurations` bounds a check (CheckBudgetExceeded).
 *
 * ## Violations
 *
 * For a key that is not linearizable, the result carries a small window of its operations that is
 * already not linearizable on its own, found by relaxations that can only make a history easier to
 * linearize (so the window's failure is evidence against the whole history):
 *   1. the shortest prefix (by invocation) that fails, where operations still running at the cut
 *      lose their result (reads dropped, writes become unknown-outcome);
 *   2. then the latest left cut that still fails: operations finished before it are dropped,
 *      operations running across it lose their result, and the key may start with any value
 *      written by an operation invoked before the cut (or absent);
 *   3. then greedily, while it still fails: drop reads, ignore the result of a completed del or cas
 *      (it still took effect), make completed writes unknown-outcome, trim either end. The window
 *      shows the operations as recorded: failing with less information implies failing with more.
 *      Unknown-outcome operations it fails without are also left out, but only if it still fails
 *      with them put back (checked at every later step), so they could not have fixed it.
 * `formatViolation` prints it as a table with an explanation: the longest consistent order a search
 * of the window finds, and why no operation can come next.
 */
import type { PbftClientErrorCode } from '../client/errors.ts';
import {
  ABSENT,
  type CasOutcome,
  FIRST_VALUE,
  K_CAS,
  K_CAS_MAYBE,
  K_CAS_ANY,
  K_DEL,
  K_DEL_ANY,
  K_DEL_MAYBE,
  K_GET,
  K_PUT,
  K_PUT_MAYBE,
  K_UNREAD_WRITE,
  type KvHistoryOp,
  type KvHistoryResult,
  OTHER,
  type ResultOf,
  step,
  UNREAD,
  ValueTable,
  whyNot,
} from './kv-model.ts';

export type { CasOutcome, KvHistoryOp, KvHistoryResult, ResultOf } from './kv-model.ts';

export type Outcome = 'ok' | 'fail' | 'unknown';

/** One operation of a history (see the header). */
export interface Op {
  /** Unique within the history. */
  id: number;
  /** The process that invoked it (only displayed). */
  client: number | string;
  key: string;
  op: KvHistoryOp;
  invoke: number;
  /** When it returned; required for 'ok', informational otherwise. */
  complete?: number;
  outcome: Outcome;
  /** For 'ok': put undefined, get string | null, del boolean, cas CasOutcome. */
  result?: KvHistoryResult;
}

export interface Violation {
  ok: false;
  key: string;
  /** A small sub-history of `key` that is already not linearizable, by invocation time. */
  window: Op[];
  explanation: string;
}

export type CheckResult = { ok: true } | Violation;

/** Counters a check adds to (pass an object in CheckOptions.stats). */
export interface CheckStats {
  /** Configurations the searches entered (memo entries), over all keys and window searches. */
  configurations: number;
}

export interface CheckOptions {
  /** Filled in with counters of the work done. */
  stats?: CheckStats;
  /**
   * Give up (throw CheckBudgetExceeded) when one search has explored this many configurations.
   * Default: no limit.
   */
  maxConfigurations?: number;
  /** Shrink the window of a violation (default true); false reports the key's whole history. */
  minimize?: boolean;
  /**
   * false: the textbook search, without the reductions described in the header (for testing them
   * against it; exponentially slower on concurrent histories with unknown outcomes).
   */
  reductions?: boolean;
}

/** The explanation's own search (longest consistent order) stops here: windows are usually tiny. */
const EXPLAIN_CONFIGURATIONS = 200_000;

/** Thrown when a search exceeds `maxConfigurations`. */
export class CheckBudgetExceeded extends Error {
  constructor(
    readonly key: string,
    readonly configurations: number,
  ) {
    super(`linearizability check of key ${JSON.stringify(key)} gave up after ${configurations} configurations`);
    this.name = 'CheckBudgetExceeded';
  }
}

// ================================================================================================
// Recording

const FAIL_CODES: ReadonlySet<string> = new Set<PbftClientErrorCode>([
  'MALFORMED_OP',
  'KEY_EMPTY',
  'KEY_TOO_LONG',
  'VALUE_TOO_LARGE',
  'REQUEST_TOO_LARGE',
  'CONNECT_FAILED',
  'BAD_CONFIG',
]);

/**
 * The outcome an SDK error implies for the operation that raised it: 'fail' only when it certainly
 * had no effect (see the header for the mapping), 'unknown' otherwise.
 */
export function outcomeOfError(err: unknown): 'fail' | 'unknown' {
  if (typeof err !== 'object' || err === null) return 'unknown';
  const name = (err as { name?: unknown }).name;
  const code = (err as { code?: unknown }).code;
  const fromSdk = typeof name === 'string' && /^(PbftClientError|KvError|RequestTooLargeError|ConnectError|ClientConfigError)$/.test(name);
  return fromSdk && typeof code === 'string' && FAIL_CODES.has(code) ? 'fail' : 'unknown';
}

/** One recorded invocation: end it exactly once with ok, fail, unknown or error. */
export class OpHandle<R> {
  constructor(
    private readonly record: Op,
    private readonly now: () => number,
  ) {}

  get id(): number {
    return this.record.id;
  }

  /** It returned `result`. */
  ok(result: R): void {
    this.end('ok');
    if (result !== undefined) this.record.result = copyResult(result as KvHistoryResult);
  }

  /** It certainly did not take effect and never will. */
  fail(): void {
    this.end('fail');
  }

  /** It may have taken effect (at any time after its invocation) or not. */
  unknown(): void {
    this.end('unknown');
  }

  /** It raised `err`: records the outcome `outcomeOfError` implies, and returns it. */
  error(err: unknown): 'fail' | 'unknown' {
    const outcome = outcomeOfError(err);
    this.end(outcome);
    return outcome;
  }

  private end(outcome: Outcome): void {
    if (this.record.outcome !== PENDING) throw new Error(`operation ${this.record.id} already ended (${this.record.outcome})`);
    this.record.complete = this.now();
    this.record.outcome = outcome;
  }
}

/** The outcome of a recorded operation that has not ended yet (read as 'unknown'). */
const PENDING = 'pending' as unknown as Outcome;

function copyResult(r: KvHistoryResult): KvHistoryResult {
  return typeof r === 'object' && r !== null ? { swapped: r.swapped, current: r.current } : r;
}

/**
 * Records a history with the caller's clock:
 *
 *   const history = new History(() => performance.now());
 *   const h = history.invoke(client, key, { type: 'get' });
 *   try { h.ok(await sdk.get(key)) } catch (err) { h.error(err) }
 *   ...
 *   checkLinearizable(history.ops());
 */
export class History {
  private readonly records: Op[] = [];

  constructor(private readonly now: () => number) {}

  invoke<O extends KvHistoryOp>(client: number | string, key: string, op: O): OpHandle<ResultOf<O>> {
    const record: Op = { id: this.records.length, client, key, op: copyOp(op), invoke: this.now(), outcome: PENDING };
    this.records.push(record);
    return new OpHandle<ResultOf<O>>(record, this.now);
  }

  /** A copy of the history so far; operations that have not ended yet are 'unknown'. */
  ops(): Op[] {
    return this.records.map((r) => {
      const copy: Op = { ...r, op: copyOp(r.op) };
      if (r.outcome === PENDING) {
        copy.outcome = 'unknown';
        delete copy.complete;
      }
      if (r.result !== undefined) copy.result = copyResult(r.result);
      return copy;
    });
  }

  get length(): number {
    return this.records.length;
  }
}

function copyOp(op: KvHistoryOp): KvHistoryOp {
  switch (op.type) {
    case 'put':
      return { type: 'put', value: op.value };
    case 'get':
      return { type: 'get' };
    case 'del':
      return { type: 'del' };
    case 'cas':
      return { type: 'cas', expected: op.expected, next: op.next };
  }
}

// ================================================================================================
// Validation

function isValueOrNull(v: unknown): v is string | null {
  return v === null || typeof v === 'string';
}

/** Throws TypeError naming the first malformed record. */
function validate(history: readonly Op[]): void {
  const ids = new Set<number>();
  for (const o of history) {
    const bad: (why: string) => never = (why) => {
      throw new TypeError(`history op ${String((o as Op | null)?.id)}: ${why}`);
    };
    if (typeof o !== 'object' || o === null) bad('not an object');
    if (ids.has(o.id)) bad('duplicate id');
    ids.add(o.id);
    if (typeof o.key !== 'string') bad('key must be a string');
    if (typeof o.invoke !== 'number' || !Number.isFinite(o.invoke)) bad('invoke must be a finite number');
    if (o.outcome !== 'ok' && o.outcome !== 'fail' && o.outcome !== 'unknown') bad(`outcome must be ok, fail or unknown`);
    const op = o.op as KvHistoryOp | undefined;
    if (typeof op !== 'object' || op === null) bad('op missing');
    switch (op.type) {
      case 'put':
        if (typeof op.value !== 'string') bad('put value must be a string');
        break;
      case 'get':
      case 'del':
        break;
      case 'cas':
        if (!isValueOrNull(op.expected) || !isValueOrNull(op.next)) bad('cas expected and next must be strings or null');
        break;
      default:
        bad(`unknown op type ${String((op as { type?: unknown }).type)}`);
    }
    if (o.outcome !== 'ok') continue;
    if (typeof o.complete !== 'number' || !Number.isFinite(o.complete)) bad('an ok operation needs a finite completion time');
    if (o.complete < o.invoke) bad('completes before it is invoked');
    const r = o.result;
    switch (op.type) {
      case 'put':
        break;
      case 'get':
        if (!isValueOrNull(r)) bad('an ok get needs a result: a string or null');
        break;
      case 'del':
        if (typeof r !== 'boolean') bad('an ok del needs a boolean result (existed)');
        break;
      case 'cas':
        if (typeof r !== 'object' || r === null || typeof r.swapped !== 'boolean' || !isValueOrNull(r.current)) {
          bad('an ok cas needs a result { swapped: boolean, current: string | null }');
        }
        break;
    }
  }
}

// ================================================================================================
// Compiling one key's (relaxed) sub-history for the search

/**
 * An operation of a (sub-)history under check, possibly with less information than it has (each
 * level a relaxation of the one before: every linearization of the stricter one is one of it):
 *   0  as recorded;
 *   1  a completed operation whose result is not known (it took effect, with some result);
 *   2  an operation whose outcome is unknown (it took effect at some time after its invocation, or not).
 */
interface Item {
  op: Op;
  level: 0 | 1 | 2;
}

const effectiveOutcome = (it: Item): Outcome => (it.level === 2 && it.op.outcome === 'ok' ? 'unknown' : it.op.outcome);
/** A completed operation whose result is used. */
const resultKnown = (it: Item): boolean => it.level === 0 && it.op.outcome === 'ok';

/** Operations of one key, numbered for the search: first those with a completion bound, by invocation. */
interface Compiled {
  n: number;
  /** Operations 0..finite-1 have a completion bound (must be linearized); the rest do not. */
  finite: number;
  src: Op[];
  kind: Int8Array;
  a: Int32Array;
  b: Int32Array;
  c: Int32Array;
  d: Int32Array;
  call: Float64Array;
  ret: Float64Array;
  /** Interchangeability class of an unbounded operation (-1: none), and its rank in the class. */
  cls: Int32Array;
  clsRank: Int32Array;
  classes: number;
  /** Entries in time order: op i's call is i, its return n + i. */
  order: Int32Array;
  /** Implied precedence (see `impliedOrder`): op i must follow pred[i] more operations, and precedes succ[succStart[i]..succStart[i+1]). */
  pred: Int32Array;
  succStart: Int32Array;
  succ: Int32Array;
  /** Some completed operation observed a value nothing could have written before it. */
  impossible: boolean;
  /** Compiled without reductions: search without them too. */
  plain: boolean;
  /** Items the reductions dropped as irrelevant (unknown-outcome writes nothing could depend on, ...). */
  dropped: Item[];
  /** Value ids some compiled operation reads (reports or compares); all others map to OTHER. */
  referenced: Set<number>;
}

interface Row {
  item: Item;
  kind: number;
  a: number;
  b: number;
  c: number;
  d: number;
  ret: number;
  cls: string | null;
}

/**
 * How to compile: 'search' with every reduction; 'explain' the same but naming every value (no
 * OTHER); 'plain' the textbook search, none of the reductions (for tests: exponentially slower).
 */
type Mode = 'search' | 'explain' | 'plain';

/**
 * Compiles items for the search. `mayStartWith` holds the non-absent values the key may hold
 * initially (reductions that rely on a value having one writer do not apply to those).
 */
function compile(items: readonly Item[], values: ValueTable, mayStartWith: ReadonlySet<number>, mode: Mode = 'search'): Compiled {
  const plain = mode === 'plain';
  const live: Item[] = [];
  for (const it of items) {
    const out = effectiveOutcome(it);
    if (out === 'fail') continue;
    if (it.op.op.type === 'get' && !resultKnown(it)) continue; // constrains nothing
    live.push(it);
  }

  // Intern every value first (the arrays below are sized by the table), then: who may write them,
  // who observes them.
  for (const it of live) {
    const o = it.op.op;
    if (o.type === 'put') values.id(o.value);
    else if (o.type === 'cas') {
      values.id(o.expected);
      values.id(o.next);
    }
    if (resultKnown(it)) {
      const r = it.op.result;
      if (o.type === 'get') values.id(r as string | null);
      else if (o.type === 'cas') values.id((r as CasOutcome).current);
    }
  }
  const size = values.size;
  const writers = new Int32Array(size);
  const referenced = new Uint8Array(size);
  const firstObserved = new Float64Array(size).fill(Infinity);
  let lastDelExisted = -Infinity;
  const observe = (v: number, definiteAt: number | undefined): void => {
    if (v === ABSENT) return;
    referenced[v] = 1;
    if (definiteAt !== undefined && definiteAt < firstObserved[v]!) firstObserved[v] = definiteAt;
  };
  for (const it of live) {
    const o = it.op.op;
    const ok = resultKnown(it);
    const done = ok ? it.op.complete : undefined;
    if (o.type === 'put') writers[values.id(o.value)]!++;
    else if (o.type === 'get') {
      if (ok) observe(values.id(it.op.result as string | null), done);
    } else if (o.type === 'del') {
      if (ok && it.op.result === true && it.op.complete! > lastDelExisted) lastDelExisted = it.op.complete!;
    } else {
      const r = ok ? (it.op.result as CasOutcome) : undefined;
      if (o.next !== null && !(r !== undefined && !r.swapped)) writers[values.id(o.next)]!++;
      // The expected value is observed by a cas that swapped; any cas may need it (unknown ones too).
      observe(values.id(o.expected), r !== undefined && r.swapped ? done : undefined);
      if (r !== undefined && !r.swapped) observe(values.id(r.current), done);
    }
  }

  // Values nobody reads are indistinguishable to every operation (a get or cas would have to report
  // or compare them; a del only sees that the key exists): one state, OTHER, stands for them all,
  // so configurations that differ only in which unread value the key holds are explored once.
  // (Not for explanations, which name the values.)
  const canon = (v: number): number => (mode !== 'search' || v === ABSENT || referenced[v] === 1 ? v : OTHER);
  const referencedIds = new Set<number>();
  for (let v = FIRST_VALUE; v < size; v++) if (referenced[v] === 1) referencedIds.add(v);
  let rows: Row[] = [];
  const dropped: Item[] = [];
  for (const it of live) {
    const o = it.op.op;
    const row = (kind: number, a: number, b: number, c: number, d: number, ret: number, cls: string | null): void => {
      rows.push({ item: it, kind, a, b, c, d, ret, cls });
    };
    if (effectiveOutcome(it) === 'ok' && !resultKnown(it)) {
      // Took effect, result unknown.
      const t = it.op.complete!;
      if (o.type === 'put') row(K_PUT, canon(values.id(o.value)), 0, 0, 0, t, null);
      else if (o.type === 'del') row(K_DEL_ANY, 0, 0, 0, 0, t, null);
      else if (o.type === 'cas') row(K_CAS_ANY, values.id(o.expected), canon(values.id(o.next)), 0, 0, t, null);
      continue;
    }
    if (effectiveOutcome(it) === 'ok') {
      const t = it.op.complete!;
      const r = it.op.result;
      if (o.type === 'put') row(K_PUT, canon(values.id(o.value)), 0, 0, 0, t, null);
      else if (o.type === 'get') row(K_GET, values.id(r as string | null), 0, 0, 0, t, null);
      else if (o.type === 'del') row(K_DEL, r === true ? 1 : 0, 0, 0, 0, t, null);
      else {
        const cr = r as CasOutcome;
        const next = values.id(o.next);
        const current = values.id(cr.current);
        // A swapped cas reporting a current other than its next can never fit: keep it unequal to
        // next (two distinct unread values would both become OTHER).
        const d = mode === 'search' && cr.swapped && current !== next ? -2 : canon(current);
        row(K_CAS, values.id(o.expected), canon(next), cr.swapped ? 1 : 0, d, t, null);
      }
      continue;
    }
    // Unknown outcome: no completion bound, unless one is implied (below).
    if (plain) {
      // Each in a class of its own: the memo records which unbounded operations were used by class.
      const own = `#${it.op.id}`;
      if (o.type === 'put') row(K_PUT, values.id(o.value), 0, 0, 0, Infinity, own);
      else if (o.type === 'del') row(K_DEL_ANY, 0, 0, 0, 0, Infinity, own);
      else if (o.type === 'cas') row(K_CAS_ANY, values.id(o.expected), values.id(o.next), 0, 0, Infinity, own);
      continue;
    }
    if (o.type === 'del') {
      row(K_DEL_MAYBE, 0, 0, 0, 0, Infinity, 'del');
      continue;
    }
    if (o.type === 'get') continue;
    const expected = o.type === 'cas' ? values.id(o.expected) : -1;
    const v = values.id(o.type === 'put' ? o.value : o.next);
    if (o.type === 'cas' && expected === v) {
      dropped.push(it); // changes nothing whether it swaps or not
      continue;
    }
    if (v !== ABSENT && referenced[v] === 0) {
      // Unread write. In a linearization where it takes effect, nothing until the next change of the
      // value observes it (an observation would be a reference): no get, no cas (either outcome
      // reports or compares the value); a del sees only that the key exists. Removing it (and any
      // unknown-outcome cas in between, all of which failed) leaves a linearization unless a del
      // with existed=true needed it because the key was absent before it; and then it can move to
      // just before that del. So: only from absent (a cas expecting a value would leave the key
      // existing anyway), only straight before a del that reports existed=true, and not at all if
      // no such del can come after it. All unread writes are then interchangeable.
      if ((o.type === 'put' || expected === ABSENT) && lastDelExisted >= it.op.invoke) row(K_UNREAD_WRITE, 0, 0, 0, 0, Infinity, 'unread');
      else dropped.push(it);
      continue;
    }
    // A value observed by a completed operation and written by no one else (nor held initially):
    // this write took effect before the first such observer completed.
    const bound = v !== ABSENT && writers[v] === 1 && !mayStartWith.has(v) && firstObserved[v]! < Infinity ? Math.max(it.op.invoke, firstObserved[v]!) : Infinity;
    const cls = bound < Infinity ? null : `${o.type}:${expected}:${v}`;
    if (o.type === 'put') row(K_PUT_MAYBE, v, 0, 0, 0, bound, cls);
    else row(K_CAS_MAYBE, expected, v, 0, 0, bound, cls);
  }

  // An unbounded write that takes effect must be followed, next, by an operation that depends on
  // the state it leaves (see FRESH): one that needs that value (or absence), a del that needs the key
  // to exist (after a value), or a cas whose result is set aside (any state matters to it). So:
  //   - one that no such operation can follow (none completes after it is invoked) never needs to
  //     take effect: drop it, and repeat (that may leave others without one);
  //   - each use of a class is followed by a different such operation: a class with F of them needs
  //     only its F earliest members (the only ones ever tried first).
  while (!plain) {
    const latest = new Map<number | 'absent' | 'exists' | 'any', number>();
    const count = new Map<number | 'absent' | 'exists' | 'any', number>();
    const need = (what: number | 'absent' | 'exists' | 'any', t: number): void => {
      const k = what === ABSENT ? 'absent' : what;
      if (typeof k === 'number' && k < 0) return;
      latest.set(k, Math.max(latest.get(k) ?? -Infinity, t));
      count.set(k, (count.get(k) ?? 0) + 1);
    };
    for (const r of rows) {
      if (r.kind === K_GET || r.kind === K_CAS_MAYBE) need(r.a, r.ret);
      else if (r.kind === K_DEL) need(r.a === 0 ? 'absent' : 'exists', r.ret);
      else if (r.kind === K_CAS) need(r.c === 1 ? r.a : r.d, r.ret);
      else if (r.kind === K_UNREAD_WRITE) need('absent', r.ret);
      else if (r.kind === K_CAS_ANY) need('any', r.ret);
    }
    const followers = (r: Row): { last: number; n: number } | undefined => {
      if (r.ret !== Infinity) return undefined;
      const of = (...ks: (number | 'absent' | 'exists' | 'any')[]): { last: number; n: number } => ({
        last: Math.max(...ks.map((k) => latest.get(k) ?? -Infinity)),
        n: ks.reduce<number>((sum, k) => sum + (count.get(k) ?? 0), 0),
      });
      if (r.kind === K_UNREAD_WRITE) return of('exists');
      if (r.kind === K_DEL_MAYBE || (r.kind === K_CAS_MAYBE && r.b === ABSENT)) return of('absent', 'any');
      if (r.kind === K_PUT_MAYBE || r.kind === K_CAS_MAYBE) return of(r.kind === K_PUT_MAYBE ? r.a : r.b, 'exists', 'any');
      return undefined;
    };
    const rank = new Map<string, number>();
    const useless = new Set<Row>();
    for (const r of [...rows].sort((x, y) => x.item.op.invoke - y.item.op.invoke || x.item.op.id - y.item.op.id)) {
      const f = followers(r);
      if (f === undefined) continue;
      const k = r.cls ?? `#${r.item.op.id}`;
      const i = rank.get(k) ?? 0;
      rank.set(k, i + 1);
      if (f.last < r.item.op.invoke || i >= f.n) useless.add(r);
    }
    if (useless.size === 0) break;
    for (const r of useless) dropped.push(r.item);
    rows = rows.filter((r) => !useless.has(r));
  }
  // A value a completed operation observed must be held initially or written by an operation
  // invoked before that one completed.
  let impossible = false;
  const firstWrite = new Map<number, number>();
  for (const r of rows) {
    const v = r.kind === K_PUT || r.kind === K_PUT_MAYBE ? r.a : (r.kind === K_CAS && r.c === 1) || r.kind === K_CAS_MAYBE || r.kind === K_CAS_ANY ? r.b : ABSENT;
    if (v !== ABSENT) firstWrite.set(v, Math.min(firstWrite.get(v) ?? Infinity, r.item.op.invoke));
  }
  for (const r of rows) {
    const v = r.kind === K_GET ? r.a : r.kind === K_CAS ? (r.c === 1 ? r.a : r.d) : ABSENT;
    if (!plain && v >= FIRST_VALUE && !mayStartWith.has(v) && !((firstWrite.get(v) ?? Infinity) <= r.ret)) impossible = true;
  }

  const byInvoke = (x: Row, y: Row): number => x.item.op.invoke - y.item.op.invoke || x.item.op.id - y.item.op.id;
  const bounded = rows.filter((r) => r.ret < Infinity).sort(byInvoke);
  const unbounded = rows.filter((r) => r.ret === Infinity).sort(byInvoke);
  const all = [...bounded, ...unbounded];
  const n = all.length;
  const c: Compiled = {
    n,
    finite: bounded.length,
    src: all.map((r) => r.item.op),
    kind: new Int8Array(n),
    a: new Int32Array(n),
    b: new Int32Array(n),
    c: new Int32Array(n),
    d: new Int32Array(n),
    call: new Float64Array(n),
    ret: new Float64Array(n),
    cls: new Int32Array(n).fill(-1),
    clsRank: new Int32Array(n),
    classes: 0,
    order: new Int32Array(2 * n),
    pred: new Int32Array(n),
    succStart: new Int32Array(n + 1),
    succ: new Int32Array(0),
    dropped,
    referenced: referencedIds,
    impossible,
    plain,
  };
  const classIds = new Map<string, { id: number; size: number }>();
  all.forEach((r, i) => {
    c.kind[i] = r.kind;
    c.a[i] = r.a;
    c.b[i] = r.b;
    c.c[i] = r.c;
    c.d[i] = r.d;
    c.call[i] = r.item.op.invoke;
    c.ret[i] = r.ret;
    // Every unbounded operation needs a class: the memo knows which were used only through them.
    const key = r.cls ?? (r.ret === Infinity ? `#${r.item.op.id}` : null);
    if (key !== null) {
      let k = classIds.get(key);
      if (k === undefined) classIds.set(key, (k = { id: classIds.size, size: 0 }));
      c.cls[i] = k.id;
      c.clsRank[i] = k.size++;
    }
  });
  c.classes = classIds.size;
  // Time order; at equal times calls before returns (touching intervals are concurrent).
  const entries = Array.from({ length: 2 * n }, (_, e) => e);
  const time = (e: number): number => (e < n ? c.call[e]! : c.ret[e - n]!);
  entries.sort((x, y) => time(x) - time(y) || (x < n ? 0 : 1) - (y < n ? 0 : 1) || x - y);
  c.order.set(entries);
  if (!plain) impliedOrder(c, values.size, mayStartWith);
  return c;
}

/**
 * Precedence between operations with a completion bound that every linearization obeys, when a
 * value v (not possibly held initially) has exactly one writer w and is observed by completed
 * operations (a get that returned v, a cas that found v): just before each observer the key holds
 * v, and only w ever makes it hold v. So w comes before every observer. Every bounded operation o
 * has a known state after it (a put or get: its value; a del: absent; a cas: `current`). So, for o
 * with after(o) != v:
 *   - if o precedes an observer r in real time, o comes before w (else the key would not hold v
 *     when r takes effect);
 *   - if w precedes o in real time, every observer comes before o (after o the key never holds v
 *     again).
 * Real-time order already covers the pairs left out below. The search only gets fewer orders to
 * try; the edges are optional (capped in number), never needed for correctness.
 */
function impliedOrder(c: Compiled, valueCount: number, mayStartWith: ReadonlySet<number>): void {
  const { finite, kind, a, b, call, ret } = c;
  const after = new Int32Array(finite);
  const writer = new Int32Array(valueCount).fill(-1);
  const writers = new Int32Array(valueCount);
  const observers: number[][] = [];
  for (let i = 0; i < finite; i++) {
    const k = kind[i]!;
    let written = -1;
    let seen = -1;
    if (k === K_PUT || k === K_PUT_MAYBE) {
      after[i] = a[i]!;
      written = a[i]!;
    } else if (k === K_GET) {
      after[i] = a[i]!;
      seen = a[i]!;
    } else if (k === K_DEL) after[i] = ABSENT;
    else if (k === K_CAS) {
      if (c.c[i] === 1) {
        after[i] = b[i]!;
        if (a[i] !== b[i]) written = b[i]!;
        seen = a[i]!;
      } else {
        after[i] = c.d[i]!;
        seen = c.d[i]!;
      }
    } else if (k === K_CAS_MAYBE) {
      after[i] = b[i]!;
      written = b[i]!;
    } else if (k === K_DEL_ANY) after[i] = ABSENT;
    else if (k === K_CAS_ANY) {
      after[i] = -1; // swapped or not
      if (a[i] !== b[i]) written = b[i]!; // the only possible writer of b is a writer of b
    } else after[i] = -1;
    if (written > ABSENT) {
      writers[written]!++;
      writer[written] = i;
    }
    if (seen > ABSENT) (observers[seen] ??= []).push(i);
  }
  // Unbounded operations may write values too: such a value has no unique bounded writer.
  for (let i = finite; i < c.n; i++) {
    const k = kind[i]!;
    const v = k === K_PUT_MAYBE ? a[i]! : k === K_CAS_MAYBE ? b[i]! : -1;
    if (v > ABSENT) writers[v]!++;
  }
  const byRet = Array.from({ length: finite }, (_, i) => i).sort((x, y) => ret[x]! - ret[y]!);
  const from: number[] = [];
  const to: number[] = [];
  const cap = 64 * c.n + 1024;
  for (let v = FIRST_VALUE; v < valueCount && from.length < cap; v++) {
    const obs = observers[v];
    const w = writer[v]!;
    if (obs === undefined || writers[v] !== 1 || w < 0 || mayStartWith.has(v)) continue;
    // w before every observer.
    for (const r of obs) {
      if (call[r]! <= ret[w]!) {
        from.push(w);
        to.push(r);
      }
    }
    // o ends before some observer starts: o before w.
    let lastObsCall = -Infinity;
    for (const r of obs) if (call[r]! > lastObsCall) lastObsCall = call[r]!;
    let lo = 0;
    let hi = finite;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ret[byRet[mid]!]! < call[w]!) lo = mid + 1;
      else hi = mid;
    }
    for (let j = lo; j < finite && from.length < cap; j++) {
      const o = byRet[j]!;
      if (ret[o]! >= lastObsCall) break;
      if (o !== w && after[o] !== v && after[o]! >= 0) {
        from.push(o);
        to.push(w);
      }
    }
    // o starts after w ended: every observer before o (bounded operations are sorted by invocation).
    const wEnd = ret[w]!;
    lo = 0;
    hi = finite;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (call[mid]! <= wEnd) lo = mid + 1;
      else hi = mid;
    }
    for (const r of obs) {
      for (let o = lo; o < finite && call[o]! <= ret[r]! && from.length < cap; o++) {
        if (o !== r && after[o] !== v && after[o]! >= 0) {
          from.push(r);
          to.push(o);
        }
      }
    }
  }
  const m = from.length;
  const start = c.succStart;
  for (let e = 0; e < m; e++) {
    start[from[e]! + 1]!++;
    c.pred[to[e]!]!++;
  }
  for (let i = 0; i < c.n; i++) start[i + 1]! += start[i]!;
  const fill = start.slice(0, c.n);
  c.succ = new Int32Array(m);
  for (let e = 0; e < m; e++) c.succ[fill[from[e]!]!++] = to[e]!;
}

// ================================================================================================
// The search

/**
 * Added to the state right after an operation without a completion bound took effect: the next
 * operation must depend on the state it left. If a blind write (a put, or a del of unknown result) came next
 * instead, the earlier one could be left out of the linearization (it is optional) and everything
 * after would stay the same; so only such orders need to be tried.
 */
const FRESH = 1 << 29;

/** The deepest configuration a search reached (for explanations). */
interface Trace {
  depth: number;
  seq: number[];
  init: number;
}

function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) | 0;
}

/**
 * Whether real-time order and the implied order (impliedOrder) together still allow some order of
 * the bounded operations, ignoring the model: Kahn's algorithm on their union (the real-time part
 * through the time-ordered list: an operation is free once its call comes before every return left).
 * False means no linearization exists; found in O(n * concurrency) instead of by exhausting the
 * search (typical of stale reads: w1 < w2 < r in real time, r reads w1, so w2 must precede w1).
 */
function orderable(c: Compiled): boolean {
  const { n, finite, order, succStart, succ } = c;
  if (c.succ.length === 0) return true;
  const pred = c.pred.slice();
  const H = 2 * n;
  const next = new Int32Array(2 * n + 2);
  const prev = new Int32Array(2 * n + 2);
  let p = H;
  for (let i = 0; i < 2 * n; i++) {
    const e = order[i]!;
    next[p] = e;
    prev[e] = p;
    p = e;
  }
  next[p] = H + 1;
  prev[H + 1] = p;
  let left = finite;
  while (left > 0) {
    let e = next[H]!;
    while (e < n && (e >= finite || pred[e] !== 0)) e = next[e]!;
    if (e >= n) return false; // a bounded return (or the end) before any free bounded call
    for (let j = succStart[e]!; j < succStart[e + 1]!; j++) pred[succ[j]!]!--;
    for (const x of [e, n + e]) {
      next[prev[x]!] = next[x]!;
      prev[next[x]!] = prev[x]!;
    }
    left--;
  }
  return true;
}

/**
 * WGL/Lowe search from each initial state in turn (one memo table for all: a configuration that
 * failed from one initial state fails from every other). True when some linearization exists.
 *
 * A configuration is (linearized bounded operations as a bitset, how many of each class of
 * unbounded operations were used, state); since a class is always used in one order, the counts
 * say which. Memo entries are configurations entered before: finished ones all failed (success ends
 * the search), unfinished ones are the current path, which never repeats. Besides exact repeats, a
 * configuration is skipped when a failed one had the same bitset and state with at most as many
 * of each class used: it could do everything this one can (the earlier members of a class are
 * available whenever the later ones are, with the same effect; unbounded returns never block).
 */
function search(c: Compiled, initials: readonly number[], key: string, budget: number, trace: Trace | null, stats?: CheckStats): boolean {
  const { n, finite, kind, a, b, cls, clsRank, order, succStart, succ } = c;
  const cc = c.c;
  const dd = c.d;
  const classes = c.classes;
  if (finite === 0) return true;
  if (trace === null && (c.impossible || !orderable(c))) return false;
  const pred = c.pred.slice();
  const H = 2 * n;
  const T = 2 * n + 1;
  const next = new Int32Array(2 * n + 2);
  const prev = new Int32Array(2 * n + 2);
  let p = H;
  for (let i = 0; i < 2 * n; i++) {
    const e = order[i]!;
    next[p] = e;
    prev[e] = p;
    p = e;
  }
  next[p] = T;
  prev[T] = p;

  // Bitset of linearized bounded operations, with an incremental (Zobrist) hash.
  const words = (finite + 31) >>> 5;
  const bits = new Int32Array(words);
  const z1 = new Int32Array(finite);
  const z2 = new Int32Array(finite);
  for (let i = 0; i < finite; i++) {
    z1[i] = mix32(2 * i + 0x51ed27);
    z2[i] = mix32(2 * i + 1 + 0x2c1b3c6d);
  }
  let h1 = 0;
  let h2 = 0;
  /** First bounded op not linearized; last one linearized. Words before/after them are all ones/zeros. */
  let low = 0;
  let high = -1;
  const isSet = (i: number): boolean => (bits[i >>> 5]! & (1 << (i & 31))) !== 0;
  const used = new Int32Array(classes);

  // Memo: hash of (bitset, state) -> entries [failed, state, lowWord, highWord, words lowWord..highWord, used counts].
  const memo = new Map<number, Int32Array[]>();
  let configurations = 0;
  /** Enters the current configuration; undefined when it (or one that dominates it) was entered before. */
  const enter = (state: number): Int32Array | undefined => {
    const lowW = low >>> 5;
    const highW = high >> 5;
    const k1 = (h1 ^ Math.imul(state + 1, 0x9e3779b1)) >>> 0;
    const k2 = (h2 ^ Math.imul(state + 1, 0x85ebca77)) & 0x1fffff;
    const k = k1 * 0x200000 + k2;
    let bucket = memo.get(k);
    if (bucket !== undefined) {
      outer: for (const s of bucket) {
        if (s[1] !== state || s[2] !== lowW || s[3] !== highW) continue;
        let j = 4;
        for (let w = lowW; w <= highW; w++, j++) if (s[j] !== bits[w]) continue outer;
        let same = true;
        for (let x = 0; x < classes; x++, j++) {
          const u = s[j]!;
          if (u !== used[x]) {
            if (u > used[x]! || s[0] === 0) continue outer; // not dominating (or not known to fail)
            same = false;
          }
        }
        if (same || s[0] === 1) return undefined;
      }
    } else {
      bucket = [];
      memo.set(k, bucket);
    }
    const span = highW >= lowW ? highW - lowW + 1 : 0;
    const s = new Int32Array(4 + span + classes);
    s[1] = state;
    s[2] = lowW;
    s[3] = highW;
    let j = 4;
    for (let w = lowW; w <= highW; w++) s[j++] = bits[w]!;
    for (let x = 0; x < classes; x++) s[j++] = used[x]!;
    bucket.push(s);
    if (++configurations > budget) throw new CheckBudgetExceeded(key, configurations);
    return s;
  };
  const stackOp = new Int32Array(n);
  const stackState = new Int32Array(n);
  const stackEntry: (Int32Array | undefined)[] = new Array(n + 1);
  const finish = (ok: boolean): boolean => {
    if (stats !== undefined) stats.configurations += configurations;
    return ok;
  };

  for (const init of initials) {
    const root = enter(init);
    if (root === undefined) continue;
    stackEntry[0] = root;
    let state = init;
    let depth = 0;
    let done = 0;
    let phase = 0; // 0: try bounded operations; 1: then unbounded ones (same candidates)
    let entry = next[H]!;
    for (;;) {
      if (done === finite) {
        if (trace !== null) {
          trace.depth = depth;
          trace.seq = Array.from(stackOp.subarray(0, depth));
          trace.init = init;
        }
        return finish(true);
      }
      if (entry < n) {
        const op = entry;
        const k = cls[op]!;
        if ((op < finite ? 0 : 1) === phase && pred[op] === 0 && (k < 0 || clsRank[op] === used[k])) {
          const kd = kind[op]!;
          let ns = -1;
          if (state < FRESH) ns = step(state, kd, a[op]!, b[op]!, cc[op]!, dd[op]!);
          else if (kd !== K_PUT && kd !== K_PUT_MAYBE && kd !== K_DEL_MAYBE && kd !== K_DEL_ANY) ns = step(state - FRESH, kd, a[op]!, b[op]!, cc[op]!, dd[op]!);
          if (ns >= 0 && op >= finite && ns !== UNREAD && !c.plain) ns += FRESH;
          if (ns >= 0) {
            // Tentatively apply, enter, and undo if it was entered before.
            const oldLow = low;
            const oldHigh = high;
            if (op < finite) {
              bits[op >>> 5]! ^= 1 << (op & 31);
              h1 ^= z1[op]!;
              h2 ^= z2[op]!;
              if (op === low) while (low < finite && isSet(low)) low++;
              if (op > high) high = op;
            } else used[k]!++;
            const entered = enter(ns);
            if (entered !== undefined) {
              stackOp[depth] = op;
              stackState[depth] = state;
              depth++;
              stackEntry[depth] = entered;
              state = ns;
              if (op < finite) done++;
              for (let e = succStart[op]!; e < succStart[op + 1]!; e++) pred[succ[e]!]!--;
              const re = n + op;
              next[prev[op]!] = next[op]!;
              prev[next[op]!] = prev[op]!;
              next[prev[re]!] = next[re]!;
              prev[next[re]!] = prev[re]!;
              if (trace !== null && depth > trace.depth) {
                trace.depth = depth;
                trace.seq = Array.from(stackOp.subarray(0, depth));
                trace.init = init;
              }
              entry = next[H]!;
              phase = 0;
              continue;
            }
            if (op < finite) {
              bits[op >>> 5]! ^= 1 << (op & 31);
              h1 ^= z1[op]!;
              h2 ^= z2[op]!;
              low = oldLow;
              high = oldHigh;
            } else used[k]!--;
          }
        }
        entry = next[entry]!;
        continue;
      }
      // A return (an operation that had to be linearized by now), or the end of the list.
      if (phase === 0 && finite < n) {
        phase = 1;
        entry = next[H]!;
        continue;
      }
      // Every continuation of this configuration failed.
      stackEntry[depth]![0] = 1;
      if (depth === 0) break;
      depth--;
      const op = stackOp[depth]!;
      state = stackState[depth]!;
      const re = n + op;
      next[prev[re]!] = re;
      prev[next[re]!] = re;
      next[prev[op]!] = op;
      prev[next[op]!] = op;
      for (let e = succStart[op]!; e < succStart[op + 1]!; e++) pred[succ[e]!]!++;
      if (op < finite) {
        bits[op >>> 5]! ^= 1 << (op & 31);
        h1 ^= z1[op]!;
        h2 ^= z2[op]!;
        done--;
        if (op < low) low = op;
        if (op === high) {
          high--;
          while (high >= 0 && !isSet(high)) high--;
        }
      } else used[cls[op]!]!--;
      entry = next[op]!;
      phase = op < finite ? 0 : 1;
    }
  }
  return finish(false);
}

// ================================================================================================
// Checking

/** The operations of one key and what the window search needs about them. */
class KeyHistory {
  readonly values = new ValueTable();
  /** Non-failed operations by invocation. */
  readonly sorted: Op[];
  /** (invoke, value id) of every non-failed write of a value, by invocation. */
  private readonly writes: { invoke: number; value: number }[] = [];

  constructor(
    readonly key: string,
    readonly all: Op[],
    private readonly budget: number,
    private readonly stats?: CheckStats,
    private readonly plain = false,
  ) {
    this.sorted = all.filter((o) => o.outcome !== 'fail').sort((x, y) => x.invoke - y.invoke || x.id - y.id);
    for (const o of this.sorted) {
      const v = o.op.type === 'put' ? o.op.value : o.op.type === 'cas' ? o.op.next : null;
      if (v !== null) this.writes.push({ invoke: o.invoke, value: this.values.id(v) });
    }
  }

  /** Values the key may hold at time `cut` besides absent: written by an operation invoked by then. */
  writtenBy(cut: number): Set<number> {
    const out = new Set<number>();
    for (const w of this.writes) {
      if (w.invoke > cut) break;
      out.add(w.value);
    }
    return out;
  }

  /**
   * Initial states for a window whose left cut is `cut` (-Infinity: none, the key starts absent):
   * absent, each possible value the window reads, and OTHER for all the others.
   */
  initials(cut: number, c: Compiled): { initials: number[]; possible: Set<number> } {
    if (cut === -Infinity) return { initials: [ABSENT], possible: new Set() };
    const possible = this.writtenBy(cut);
    const initials = [ABSENT];
    let other = false;
    for (const v of possible) {
      if (c.referenced.has(v)) initials.push(v);
      else other = true;
    }
    if (other) initials.push(OTHER);
    return { initials, possible };
  }

  compileWindow(items: readonly Item[], cut: number, explain = false): { c: Compiled; initials: number[] } {
    const possible = cut === -Infinity ? new Set<number>() : this.writtenBy(cut);
    const c = compile(items, this.values, possible, this.plain ? 'plain' : explain ? 'explain' : 'search');
    return { c, initials: this.initials(cut, c).initials };
  }

  linearizable(items: readonly Item[], cut: number, trace: Trace | null = null): boolean {
    const { c, initials } = this.compileWindow(items, cut);
    return search(c, initials, this.key, this.budget, trace, this.stats);
  }

  everything(): Item[] {
    return this.sorted.map((op) => ({ op, level: 0 }));
  }

  /** The first k operations by invocation; those not finished before the next one's invocation lose their result. */
  prefix(k: number): Item[] {
    const cut = k < this.sorted.length ? this.sorted[k]!.invoke : Infinity;
    const out: Item[] = [];
    for (const op of this.sorted.slice(0, k)) {
      if (op.outcome === 'ok' && op.complete! < cut) out.push({ op, level: 0 });
      else if (op.op.type !== 'get') out.push({ op, level: 2 });
    }
    return out;
  }

  /** Drops the operations that finished by `cut`; those running across it lose their result. */
  static leftCut(items: readonly Item[], cut: number): Item[] {
    const out: Item[] = [];
    for (const it of items) {
      if (effectiveOutcome(it) === 'ok' && it.op.complete! <= cut) continue;
      if (it.op.invoke <= cut) {
        if (it.op.op.type !== 'get') out.push({ op: it.op, level: 2 });
      } else out.push(it);
    }
    return out;
  }

  /** A small failing window (see the header), for a key known to fail. */
  violation(minimize: boolean): Violation {
    if (!minimize) {
      return { ok: false, key: this.key, window: [...this.sorted], explanation: this.explain(this.everything(), -Infinity) };
    }
    // 1. Shortest failing prefix (failing is monotone in k: a shorter prefix is a relaxation). When
    // the quick checks (no search) already fail the whole history, the shortest prefix they fail
    // will do: proving that longer prefixes are linearizable would take a search each.
    const quick = this.quickFail(this.everything(), -Infinity);
    const failsPrefix = (k: number): boolean => (quick ? this.quickFail(this.prefix(k), -Infinity) : this.fails(this.prefix(k), -Infinity));
    let lo = 1;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (failsPrefix(mid)) hi = mid;
      else lo = mid + 1;
    }
    let items = this.prefix(hi);
    // 2. Latest failing left cut, at a completion time of a completed operation (failing is monotone:
    // a later cut is a relaxation). Galloping back from the latest cut keeps the searches on small
    // windows: proving a large one fails can take long.
    const ends = [...new Set(items.filter((it) => effectiveOutcome(it) === 'ok').map((it) => it.op.complete!))].sort((x, y) => x - y);
    const cutAt = (j: number): number => (j === 0 ? -Infinity : ends[j - 1]!);
    const failsAt = (j: number): boolean => j === 0 || this.fails(KeyHistory.leftCut(items, cutAt(j)), cutAt(j));
    let passing = ends.length + 1; // smallest cut index known to pass (virtual beyond the last)
    let cl = ends.length;
    for (let stride = 1; ; stride *= 2) {
      if (failsAt(cl)) break;
      passing = cl;
      cl = Math.max(0, cl - stride);
    }
    while (passing - cl > 1) {
      const mid = (cl + passing) >>> 1;
      if (failsAt(mid)) cl = mid;
      else passing = mid;
    }
    let cut = cutAt(cl);
    if (cl > 0) items = KeyHistory.leftCut(items, cut);
    // 3. Greedy shrinking.
    let aside: Item[];
    ({ items, cut, aside } = this.shrink(items, cut));
    const ids = new Set(items.map((it) => it.op.id));
    const window = this.sorted.filter((o) => ids.has(o.id));
    window.push(...this.failedWritesObservedBy(window));
    window.sort((x, y) => x.invoke - y.invoke || x.id - y.id);
    return { ok: false, key: this.key, window, explanation: this.explain(items, cut, aside) };
  }

  private fails(items: readonly Item[], cut: number): boolean {
    return !this.linearizable(items, cut);
  }

  /** Fails without a search: a value observed that nothing could write, or a precedence cycle. */
  private quickFail(items: readonly Item[], cut: number): boolean {
    const { c } = this.compileWindow(items, cut);
    return c.impossible || !orderable(c);
  }

  /** Removes what the compile step would ignore anyway (unread unknown writes no del needs, no-op cas). */
  private withoutIrrelevant(items: Item[], cut: number): Item[] {
    const { c } = this.compileWindow(items, cut);
    if (c.dropped.length === 0) return items;
    const gone = new Set(c.dropped);
    return items.filter((it) => !gone.has(it));
  }

  /**
   * Greedy shrinking, keeping it failing. Most steps are relaxations. Unknown-outcome operations can
   * also be set aside (`aside`) when the window fails without them; every other step then also
   * checks that it still fails with them, so they could not have made it linearizable.
   */
  private shrink(items0: Item[], cut0: number): { items: Item[]; cut: number; aside: Item[] } {
    let items = this.withoutIrrelevant(items0, cut0);
    let cut = cut0;
    const aside: Item[] = [];
    const MAX_ATTEMPTS = 4000;
    let attempts = 0;
    /** A relaxation of the window: accepted when it still fails, with and without what is aside. */
    const tryIt = (cand: Item[], candCut: number): boolean => {
      if (attempts++ >= MAX_ATTEMPTS) return false;
      if (!this.fails(cand, candCut)) return false;
      if (aside.length > 0 && !this.fails([...cand, ...aside], candCut)) return false;
      items = this.withoutIrrelevant(cand, candCut);
      cut = candCut;
      return true;
    };
    let changed = true;
    while (changed && attempts < MAX_ATTEMPTS) {
      changed = false;
      // Right trim: operations invoked after every completed operation finished.
      const lastEnd = Math.max(-Infinity, ...items.filter((it) => effectiveOutcome(it) === 'ok').map((it) => it.op.complete!));
      const right = items.filter((it) => it.op.invoke <= lastEnd);
      if (right.length < items.length && tryIt(right, cut)) changed = true;
      // Left trim: a completed operation that finished before every other one was invoked.
      for (const it of [...items]) {
        if (effectiveOutcome(it) !== 'ok' || !items.includes(it)) continue;
        const end = it.op.complete!;
        if (items.every((o) => o === it || o.op.invoke > end) && tryIt(items.filter((o) => o !== it), Math.max(cut, end))) changed = true;
      }
      // Drop reads; make completed writes unknown-outcome.
      for (let i = items.length - 1; i >= 0; i--) {
        const it = items[i];
        if (it === undefined) continue;
        if (it.op.op.type === 'get') {
          if (tryIt(items.filter((o) => o !== it), cut)) changed = true;
        } else if (it.level < 2 && it.op.outcome === 'ok') {
          // Forget its result (a put has none), else forget that it took effect at all.
          const relax = (level: 1 | 2): Item[] => items.map((o) => (o === it ? { op: o.op, level } : o));
          if ((it.level === 0 && it.op.op.type !== 'put' && tryIt(relax(1), cut)) || tryIt(relax(2), cut)) changed = true;
        }
      }
      // Set aside unknown-outcome operations the window fails without.
      for (const it of [...items]) {
        if (effectiveOutcome(it) !== 'unknown' || attempts++ >= MAX_ATTEMPTS) continue;
        const cand = items.filter((o) => o !== it);
        if (this.fails(cand, cut)) {
          items = this.withoutIrrelevant(cand, cut);
          aside.push(it);
          changed = true;
        }
      }
    }
    return { items, cut, aside };
  }

  /** Failed writes of a value some operation of the window reports (context for the table). */
  private failedWritesObservedBy(window: readonly Op[]): Op[] {
    const seen = new Set<string>();
    for (const o of window) {
      if (o.outcome !== 'ok') continue;
      if (o.op.type === 'get' && typeof o.result === 'string') seen.add(o.result);
      if (o.op.type === 'cas') {
        const r = o.result as CasOutcome;
        if (!r.swapped && r.current !== null) seen.add(r.current);
        if (r.swapped && o.op.expected !== null) seen.add(o.op.expected);
      }
    }
    return this.all.filter((o) => o.outcome === 'fail' && seen.has(o.op.type === 'put' ? o.op.value : o.op.type === 'cas' ? (o.op.next ?? '\u0000none') : '\u0000none'));
  }

  private explain(items: readonly Item[], cut: number, aside: readonly Item[] = []): string {
    // With every value by name (no OTHER), for the reasons below.
    const { c, initials } = this.compileWindow(items, cut, true);
    const trace: Trace = { depth: -1, seq: [], init: ABSENT };
    let lin: boolean | 'gave up';
    try {
      lin = search(c, initials, this.key, Math.min(this.budget, EXPLAIN_CONFIGURATIONS), trace);
    } catch (err) {
      if (!(err instanceof CheckBudgetExceeded)) throw err;
      lin = 'gave up';
    }
    const name = (v: number): string => this.values.describe(v);
    const lines: string[] = [];
    const count = new Set(items.map((it) => it.op.id)).size;
    lines.push(
      cut === -Infinity
        ? `No order of ${these(count)} on key ${JSON.stringify(this.key)} is consistent with one copy of the key, starting absent.`
        : `No order of ${these(count)} on key ${JSON.stringify(this.key)} is consistent with one copy of the key, whatever it held at t=${fmtTime(cut)} (absent, or any value written by an operation invoked by then).`,
    );
    const level = new Map(items.map((it) => [it.op.id, it.level]));
    const setAside = items.filter((it) => it.level === 1 && it.op.op.type !== 'put').map((it) => `#${it.op.id}`);
    const unknown = items.filter((it) => it.level === 2 && it.op.outcome === 'ok').map((it) => `#${it.op.id}`);
    if (setAside.length > 0) lines.push(`That holds even ignoring what ${setAside.join(', ')} returned (only that ${setAside.length === 1 ? 'it' : 'they'} took effect).`);
    if (unknown.length > 0) lines.push(`That holds even if ${unknown.join(', ')} may have taken effect at any time after invocation, or not at all.`);
    if (aside.length > 0) {
      const ids = aside.map((it) => `#${it.op.id}`);
      lines.push(
        `Left out: ${ids.slice(0, 12).join(', ')}${ids.length > 12 ? `, ... (${ids.length})` : ''}; even as operations that may or may not have taken effect, at any time after their invocation, they cannot change that.`,
      );
    }
    if (lin === true) {
      lines.push('(The search finds this window linearizable: the explanation is incomplete.)');
      return lines.join('\n');
    }
    // Values reported that nothing (that may have taken effect) wrote.
    const written = this.writtenBy(Infinity);
    for (const it of items) {
      const o = it.op;
      if (o.outcome !== 'ok') continue;
      const seen = o.op.type === 'get' ? (o.result as string | null) : o.op.type === 'cas' && !(o.result as CasOutcome).swapped ? (o.result as CasOutcome).current : null;
      if (seen !== null && !written.has(this.values.id(seen))) {
        lines.push(`#${o.id} reported ${JSON.stringify(seen)}, which no operation that may have taken effect ever wrote.`);
      }
    }
    // Where the values the window reports come from, when their writers are outside it.
    const inWindow = new Set(items.map((it) => it.op.id));
    const noted = new Set<string>();
    for (const it of items) {
      const o = it.op;
      if (o.outcome !== 'ok') continue;
      const r = o.result;
      const seen =
        o.op.type === 'get' ? (r as string | null) : o.op.type === 'cas' ? ((r as CasOutcome).swapped ? o.op.expected : (r as CasOutcome).current) : null;
      if (seen === null || noted.has(seen)) continue;
      noted.add(seen);
      const writers = this.sorted.filter((w) => !inWindow.has(w.id) && (w.op.type === 'put' ? w.op.value === seen : w.op.type === 'cas' && w.op.next === seen));
      if (writers.length === 0) continue;
      const list = writers.slice(0, 3).map((w) => `#${w.id} ${describeOp(w)} (client ${w.client}, t=${fmtTime(w.invoke)}..${w.outcome === 'ok' ? fmtTime(w.complete) : '?'}, ${w.outcome})`);
      lines.push(`${JSON.stringify(seen)} was written outside the window by ${list.join(', ')}${writers.length > 3 ? ', ...' : ''}.`);
    }
    if (lin === 'gave up') {
      lines.push(`(The window is too large to search for the longest consistent order: ${c.n} operations.)`);
      return lines.join('\n');
    }
    let state = trace.init;
    const linearized = new Set<number>();
    if (cut !== -Infinity) lines.push(`Starting from ${name(trace.init)}, the longest consistent order found takes ${trace.seq.length} of them:`);
    else lines.push(`The longest consistent order found takes ${trace.seq.length} of them:`);
    const shown = trace.seq.length > 24 ? trace.seq.length - 24 : 0;
    if (shown > 0) lines.push(`  ... ${shown} more before`);
    trace.seq.forEach((op, i) => {
      state = step(state, c.kind[op]!, c.a[op]!, c.b[op]!, c.c[op]!, c.d[op]!);
      linearized.add(op);
      const o = c.src[op]!;
      const note = c.ret[op] === Infinity ? ' (outcome unknown)' : level.get(o.id) === 1 && o.op.type !== 'put' ? ' (result ignored)' : '';
      if (i >= shown) lines.push(`  #${o.id} ${describeOp(o)}${note}  -> key ${state === ABSENT ? 'absent' : name(state)}`);
    });
    // After it: the operations that could come next, and the one that had to.
    const n = c.n;
    let due = -1;
    const candidates: number[] = [];
    for (const e of c.order) {
      const op = e < n ? e : e - n;
      if (linearized.has(op)) continue;
      if (e >= n) {
        due = op;
        break;
      }
      candidates.push(op);
    }
    if (due >= 0) {
      const o = c.src[due]!;
      lines.push(`Then #${o.id} (${describeOp(o)}) must take effect by t=${fmtTime(c.ret[due]!)}, but no operation that may come next fits:`);
    } else lines.push('Then no operation that may come next fits:');
    for (const op of candidates) {
      if (c.ret[op] === Infinity) continue; // unknown outcome: may as well never happen
      const o = c.src[op]!;
      const before: number[] = [];
      for (let x = 0; x < c.n; x++) {
        if (linearized.has(x)) continue;
        for (let e = c.succStart[x]!; e < c.succStart[x + 1]!; e++) if (c.succ[e] === op) before.push(c.src[x]!.id);
      }
      const why =
        before.length > 0
          ? `it cannot come before #${before.join(', #')} (implied by the values read: see impliedOrder)`
          : whyNot(state, c.kind[op]!, c.a[op]!, c.b[op]!, c.c[op]!, c.d[op]!, name);
      lines.push(`  #${o.id} ${describeOp(o)} -> ${describeResult(o)}: ${why}`);
    }
    return lines.join('\n');
  }
}

/**
 * Checks a KV history (see the header). `{ ok: true }` when it is linearizable; otherwise the first
 * key (by first appearance) that is not, with a small failing window and an explanation.
 * Throws TypeError on a malformed history, CheckBudgetExceeded past `maxConfigurations`.
 */
export function checkLinearizable(history: readonly Op[], options: CheckOptions = {}): CheckResult {
  validate(history);
  const byKey = new Map<string, Op[]>();
  for (const o of history) {
    let list = byKey.get(o.key);
    if (list === undefined) byKey.set(o.key, (list = []));
    list.push(o);
  }
  const budget = options.maxConfigurations ?? Infinity;
  for (const [key, ops] of byKey) {
    const k = new KeyHistory(key, ops, budget, options.stats, options.reductions === false);
    if (!k.linearizable(k.everything(), -Infinity)) return k.violation(options.minimize ?? true);
  }
  return { ok: true };
}

// ================================================================================================
// Formatting

const these = (k: number): string => (k === 1 ? 'this operation' : `these ${k} operations`);
const q = (v: string | null): string => (v === null ? 'null' : JSON.stringify(v));

function fmtTime(t: number | undefined): string {
  if (t === undefined || t === Infinity) return '?';
  return Number.isInteger(t) ? String(t) : String(Math.round(t * 1000) / 1000);
}

export function describeOp(o: Op): string {
  switch (o.op.type) {
    case 'put':
      return `put ${q(o.op.value)}`;
    case 'get':
      return 'get';
    case 'del':
      return 'del';
    case 'cas':
      return `cas ${q(o.op.expected)} -> ${q(o.op.next)}`;
  }
}

export function describeResult(o: Op): string {
  if (o.outcome !== 'ok') return o.outcome;
  const r = o.result;
  switch (o.op.type) {
    case 'put':
      return 'ok';
    case 'get':
      return q(r as string | null);
    case 'del':
      return `existed=${String(r)}`;
    case 'cas': {
      const cr = r as CasOutcome;
      return `swapped=${cr.swapped} current=${q(cr.current)}`;
    }
  }
}

/** A violation as a table (client, invoke..complete, op, result) followed by its explanation. */
export function formatViolation(result: CheckResult): string {
  if (result.ok) return 'linearizable';
  const rows = result.window.map((o) => [`#${o.id}`, String(o.client), `${fmtTime(o.invoke)}..${o.outcome === 'ok' ? fmtTime(o.complete) : '?'}`, describeOp(o), describeResult(o)]);
  const head = ['op', 'client', 'invoke..complete', 'operation', 'result'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => `  ${cells.map((s, i) => s.padEnd(widths[i]!)).join('  ')}`.trimEnd();
  return [
    `key ${JSON.stringify(result.key)} is not linearizable; the smallest failing window found (${result.window.length} operation${result.window.length === 1 ? '' : 's'}):`,
    line(head),
    ...rows.map(line),
    '',
    result.explanation,
  ].join('\n');
}
