/**
 * The world a scenario script runs in: n real `Replica` cores (src/core/replica.ts), each behind the
 * production turn pipeline (src/node/pipeline.ts) over a simulated disk (src/sim/disk.ts), a network
 * that holds every message until a step delivers or drops it, and simple clients that sign requests
 * and accept a result on f+1 matching replies (src/client/collector.ts). Keys and signing as any
 * principal come from the paper-test harness (test/paper/harness.ts).
 *
 * Nothing moves unless a step says so: a delivered message is one turn of its recipient (receive,
 * flush, submit to the pipeline); a tick is one turn of each ticked replica. By default a replica's
 * disk syncs at once, so a turn's messages leave right after it; with `disk <r> manual` its writes
 * stay in flight until `sync <r>`, and what waits for them (durability.ts) waits too.
 *
 * Everything printed is deterministic: messages in the order they left, digests of known batches by
 * their requests (`<c0:1>`), other digests by an 8-hex prefix, counters sorted.
 *
 * See test/scenarios/runner.ts for the step language.
 */
import { decodeOp, decodeResult, type KvOp, type KvResult } from '../../src/app/kv-ops.ts';
import { KvStore } from '../../src/app/kv.ts';
import { ReplyCollector } from '../../src/client/collector.ts';
import { refusalOf, replyOf } from '../../src/client/request.ts';
import { decodeFrame } from '../../src/codec/messages.ts';
import type { CoreEvent, Replica } from '../../src/core/replica.ts';
import type { LinkMessage, RequestMsg, Signed, SignedMessage } from '../../src/core/messages.ts';
import type { ReplicaOptions } from '../../src/core/options.ts';
import { decodeHorizon } from '../../src/core/horizon.ts';
import { DEFAULT_PIPELINE_OPTIONS, TurnPipeline, type Sent, type SentReply } from '../../src/node/pipeline.ts';
import { SimDisk } from '../../src/sim/disk.ts';
import { frame, hex, PAPER_TIME_MS, SMALL_OPTIONS, TestCluster } from '../paper/harness.ts';
import { ScriptError, type Arg, type Directive } from './datadriven.ts';

/** A message in the network: sent, not yet delivered or dropped. */
interface Pending {
  from: number;
  to: number;
  bytes: Uint8Array;
  type: string;
  view?: number;
  seq?: number;
  text: string;
}

interface Host {
  id: number;
  disk: SimDisk;
  manual: boolean;
  core?: Replica;
  app?: KvStore;
  pipeline?: TurnPipeline;
  rejected: Map<string, number>;
  /** Ticks this replica has been given (a restarted core's clock resumes from here). */
  ticks: number;
}

interface ClientState {
  id: number;
  ts: number;
  view: number;
  last?: Signed<RequestMsg>;
  collectors: Map<number, ReplyCollector>;
}

const OPTION_ARGS: Record<string, keyof ReplicaOptions> = {
  checkpoint: 'checkpointInterval',
  window: 'windowSize',
  'vc-timeout': 'viewChangeTimeoutTicks',
  'vc-timeout-max': 'viewChangeTimeoutTicksMax',
  retransmit: 'retransmitTicks',
  'catch-up': 'catchUpTicks',
  'fetch-timeout': 'fetchTimeoutTicks',
  probe: 'probeTicks',
  batch: 'batchRequestsMax',
  inflight: 'inFlightBatchesMax',
};

export function opText(op: KvOp): string {
  const v = (x: string | Uint8Array | null): string => (x === null ? '-' : typeof x === 'string' ? x : `0x${hex(x)}`);
  switch (op.type) {
    case 'put':
      return `put ${op.key} ${v(op.value)}`;
    case 'get':
      return `get ${op.key}`;
    case 'del':
      return `del ${op.key}`;
    case 'cas':
      return `cas ${op.key} ${v(op.expected)} ${v(op.next)}`;
  }
}

export function resultText(r: KvResult): string {
  const v = (x: string | Uint8Array | null): string => (x === null ? '(nil)' : typeof x === 'string' ? x : `0x${hex(x)}`);
  switch (r.type) {
    case 'put':
      return 'ok';
    case 'get':
      return v(r.value);
    case 'del':
      return r.existed ? 'deleted' : 'absent';
    case 'cas':
      return `${r.swapped ? 'swapped' : 'not-swapped'} ${v(r.current)}`;
    case 'error':
      return `error ${r.code}`;
  }
}

export class ScriptWorld {
  readonly k: TestCluster;
  readonly n: number;
  readonly f: number;
  readonly options: Partial<ReplicaOptions>;
  private readonly hosts: Host[] = [];
  private readonly clients: ClientState[] = [];
  private net: Pending[] = [];
  /** The world's clock (ticks), for the pipeline's deferred writes. */
  private now = 0;
  private out: string[] = [];
  private prefix = '';
  private readonly digestNames = new Map<string, string>();
  private readonly requests = new Map<string, Signed<RequestMsg>>();

  constructor(spec: { f?: number; clients?: number; options?: Partial<ReplicaOptions> } = {}) {
    this.options = { ...SMALL_OPTIONS, ...spec.options };
    this.k = new TestCluster({ f: spec.f ?? 1, clients: spec.clients ?? 4, options: this.options });
    this.n = this.k.n;
    this.f = this.k.f;
    this.digestNames.set(hex(this.k.nullDigest), 'null');
    for (let c = 0; c < (spec.clients ?? 4); c++) this.clients.push({ id: c, ts: 0, view: 0, collectors: new Map() });
    for (let id = 0; id < this.n; id++) {
      const host: Host = { id, disk: new SimDisk(id), manual: false, rejected: new Map(), ticks: 0 };
      this.hosts.push(host);
      this.boot(host);
    }
    this.out = [];
  }

  /** Builds a world from a `cluster` directive's arguments. */
  static fromArgs(args: Arg[]): ScriptWorld {
    const options: Partial<ReplicaOptions> = {};
    let f = 1;
    let clients = 4;
    for (const a of args) {
      const v = Number(a.vals[0]);
      if (a.key === 'f') f = v;
      else if (a.key === 'clients') clients = v;
      else if (OPTION_ARGS[a.key]) (options as Record<string, number>)[OPTION_ARGS[a.key]!] = v;
      else throw new ScriptError(`cluster: unknown argument ${a.key}`);
      if (!Number.isInteger(v) || v < 0) throw new ScriptError(`cluster: ${a.key} must be a non-negative integer`);
    }
    return new ScriptWorld({ f, clients, options });
  }

  describeCluster(): string {
    const o = { ...this.options };
    return `${this.n} replicas (f=${this.f}), ${this.clients.length} clients; checkpoint every ${o.checkpointInterval}, window ${o.windowSize}, view-change timeout ${o.viewChangeTimeoutTicks} ticks`;
  }

  // ==============================================================================================
  // Steps
  // ==============================================================================================

  handle(d: Directive): string {
    this.out = [];
    this.prefix = '';
    switch (d.cmd) {
      case 'request':
        this.request(d.args);
        break;
      case 'retransmit':
        this.retransmit(d.args);
        break;
      case 'deliver':
        this.deliver(d.args, false);
        break;
      case 'stabilize':
        this.deliver(d.args, true);
        break;
      case 'drop':
        this.drop(d.args);
        break;
      case 'pending':
        for (const p of this.net.filter(this.matcher(d.args))) this.line(`${this.name(p.from)}->${this.name(p.to)} ${p.text}`);
        if (this.out.length === 0) this.line('(none)');
        break;
      case 'tick':
        this.tick(d.args);
        break;
      case 'crash':
        this.crash(d.args);
        break;
      case 'restart':
        this.restart(d.args);
        break;
      case 'disk':
        this.disk(d.args);
        break;
      case 'sync':
        for (const h of this.replicasArg(d.args, 'sync')) {
          this.prefix = '';
          if (!h.core) throw new ScriptError(`sync: replica ${h.id} is down`);
          const n = h.disk.inFlight ? 1 : 0;
          this.syncAll(h);
          if (n === 0) this.line(`${h.id}: nothing to sync`);
        }
        break;
      case 'inject':
        this.inject(d.args);
        break;
      case 'status':
        for (const h of this.replicasArg(d.args, 'status', true)) this.line(this.statusLine(h));
        break;
      case 'kv':
        this.kv(d.args);
        break;
      default:
        throw new ScriptError(`unknown command '${d.cmd}'`);
    }
    return this.out.join('\n');
  }

  // --- clients --------------------------------------------------------------------------------

  private client(word: string | undefined, cmd: string): ClientState {
    const m = word === undefined ? null : /^c(\d+)$/.exec(word);
    const c = m ? this.clients[Number(m[1])] : undefined;
    if (!c) throw new ScriptError(`${cmd}: expected a client (c0..c${this.clients.length - 1}) first, got ${word ?? 'nothing'}`);
    return c;
  }

  private parseOp(words: string[], cmd: string): KvOp {
    const v = (s: string | undefined): string | null => (s === undefined || s === '-' ? null : s);
    const [type, key, a, b] = words;
    if (key === undefined) throw new ScriptError(`${cmd}: expected an operation (put k v | get k | del k | cas k old new)`);
    switch (type) {
      case 'put':
        if (a === undefined) throw new ScriptError(`${cmd}: put needs a value`);
        return { type: 'put', key, value: a };
      case 'get':
        return { type: 'get', key };
      case 'del':
        return { type: 'del', key };
      case 'cas':
        return { type: 'cas', key, expected: v(a), next: v(b) };
      default:
        throw new ScriptError(`${cmd}: unknown operation '${type}'`);
    }
  }

  /** `request c0 put a 1 [to=0|all|1,2] [ts=N]`: client c0 signs a request and sends it. */
  private request(args: Arg[]): void {
    const words = args.filter((a) => a.vals.length === 0).map((a) => a.key);
    const c = this.client(words[0], 'request');
    const op = this.parseOp(words.slice(1), 'request');
    const tsArg = this.num(args, 'ts');
    const ts = tsArg ?? c.ts + 1;
    c.ts = Math.max(c.ts, ts);
    const req = this.k.request(c.id, ts, op);
    c.last = req;
    const label = `c${c.id}:${ts}`;
    this.requests.set(label, req);
    this.digestNames.set(hex(this.k.digest([req])), `<${label}>`);
    c.collectors.set(ts, new ReplyCollector(this.n, this.f, c.id, ts, (r) => this.k.verifyReply(r)));
    const to = this.targets(args, [c.view % this.n]);
    this.send(this.n + c.id, to, frame(req));
  }

  /** `retransmit c0 [to=...]`: the client's last request again (default: to every replica). */
  private retransmit(args: Arg[]): void {
    const words = args.filter((a) => a.vals.length === 0).map((a) => a.key);
    const c = this.client(words[0], 'retransmit');
    if (!c.last) throw new ScriptError(`retransmit: c${c.id} sent no request yet`);
    this.send(this.n + c.id, this.targets(args, this.allReplicas()), frame(c.last));
  }

  private onClientFrame(c: ClientState, from: number, bytes: Uint8Array): void {
    const d = decodeFrame(bytes);
    if (!d.ok) return this.line(`${this.prefix}c${c.id} ignored: undecodable`);
    const refusal = refusalOf(d.value);
    if (refusal) return;
    const reply = replyOf(d.value);
    if (!reply) return;
    const collector = c.collectors.get(reply.msg.timestamp);
    if (!collector) return this.line(`${this.prefix}c${c.id} ignored: no request c${c.id}:${reply.msg.timestamp}`);
    const outcome = collector.add(reply, from);
    if (outcome.kind === 'accepted') {
      c.view = Math.max(c.view, outcome.view);
      const r = decodeResult(outcome.result);
      this.line(`${this.prefix}c${c.id} accepted c${c.id}:${reply.msg.timestamp} ${r.ok ? resultText(r.value) : '(undecodable)'} (replies from ${[...outcome.replicas].sort((a, b) => a - b).join(',')})`);
    } else if (outcome.kind === 'failed') this.line(`${this.prefix}c${c.id} FAILED c${c.id}:${reply.msg.timestamp}: no result can reach f+1 replies`);
    else if (outcome.kind === 'ignored' && outcome.reason !== 'settled') this.line(`${this.prefix}c${c.id} ignored reply: ${outcome.reason}`);
  }

  // --- the network ----------------------------------------------------------------------------

  private allReplicas(): number[] {
    return Array.from({ length: this.n }, (_, i) => i);
  }

  private targets(args: Arg[], dflt: number[]): number[] {
    const a = args.find((x) => x.key === 'to');
    if (!a) return dflt;
    if (a.vals.length === 1 && a.vals[0] === 'all') return this.allReplicas();
    return a.vals.map((v) => this.replicaId(v, 'to'));
  }

  private replicaId(v: string, what: string): number {
    const id = Number(v);
    if (!Number.isInteger(id) || id < 0 || id >= this.n) throw new ScriptError(`${what}: no replica '${v}'`);
    return id;
  }

  private name(node: number): string {
    return node < this.n ? String(node) : `c${node - this.n}`;
  }

  private nodeOf(v: string, what: string): number {
    const m = /^c(\d+)$/.exec(v);
    if (m) {
      const c = Number(m[1]);
      if (c >= this.clients.length) throw new ScriptError(`${what}: no client '${v}'`);
      return this.n + c;
    }
    return this.replicaId(v, what);
  }

  /** Puts a frame in the network towards each of `to`, and prints it once. */
  private send(from: number, to: number[], bytes: Uint8Array): void {
    if (to.length === 0) return;
    const desc = this.describe(bytes);
    for (const t of to) this.net.push({ from, to: t, bytes, ...desc });
    // The same recipients k times over (a broadcast and its retransmission in one turn): "(x k)".
    let unique = to;
    let times = 1;
    for (let len = 1; len < to.length; len++) {
      if (to.length % len !== 0) continue;
      if (to.every((t, i) => t === to[i % len])) {
        unique = to.slice(0, len);
        times = to.length / len;
        break;
      }
    }
    this.line(`${this.prefix}${this.name(from)}->${unique.map((t) => this.name(t)).join(',')} ${desc.text}${times > 1 ? ` (x${times})` : ''}`);
  }

  private matcher(args: Arg[]): (p: Pending) => boolean {
    const sets = new Map<string, Set<string>>();
    for (const a of args) {
      if (['from', 'to', 'type', 'v', 's'].includes(a.key)) sets.set(a.key, new Set(a.vals));
      else if (!['limit', 'quiet', 'silent'].includes(a.key)) throw new ScriptError(`unknown filter '${a.key}' (from= to= type= v= s= limit=, quiet, silent)`);
    }
    for (const k of ['from', 'to']) for (const v of sets.get(k) ?? []) this.nodeOf(v, k);
    const has = (key: string, value: string | number | undefined): boolean => {
      const s = sets.get(key);
      return !s || (value !== undefined && s.has(String(value)));
    };
    return (p) => has('from', this.name(p.from)) && has('to', this.name(p.to)) && has('type', p.type) && has('v', p.view) && has('s', p.seq);
  }

  private num(args: Arg[], key: string): number | undefined {
    const a = args.find((x) => x.key === key);
    if (!a) return undefined;
    const v = Number(a.vals[0]);
    if (!Number.isInteger(v) || v < 0) throw new ScriptError(`${key} must be a non-negative integer`);
    return v;
  }

  /**
   * `deliver [filter] [limit=N]`: delivers the matching messages pending now, in the order they were
   * sent; what they cause is printed under each. `stabilize [filter]` repeats until none match.
   */
  private deliver(args: Arg[], repeat: boolean): void {
    const match = this.matcher(args);
    let limit = this.num(args, 'limit') ?? Infinity;
    const silent = args.some((a) => a.key === 'silent');
    const quiet = silent || args.some((a) => a.key === 'quiet');
    let delivered = 0;
    const lostAt = new Map<string, number>();
    const rejections = new Map<string, number>();
    const full = this.out;
    const kept: string[] = [];
    for (let round = 0; ; round++) {
      if (round > 10_000) throw new ScriptError('stabilize: still delivering after 10000 rounds');
      const batch = this.net.filter(match).slice(0, Number.isFinite(limit) ? limit : undefined);
      if (batch.length === 0) break;
      for (const p of batch) {
        const i = this.net.indexOf(p);
        this.net.splice(i, 1);
        limit--;
        delivered++;
        const start = this.out.length;
        this.line(`${this.name(p.from)}->${this.name(p.to)} ${p.text}`);
        this.prefix = '  ';
        this.deliverOne(p);
        this.prefix = '';
        if (quiet) {
          // Keep only what the delivery caused that is not a message: events, rejections, clients.
          let caused = this.out.slice(start + 1).filter((l) => !/^ {2}\S+->\S+ /.test(l));
          // silent: only what goes wrong or reaches a client (and a count of the rest).
          if (silent) caused = caused.filter((l) => / (rejected|accepted|FAILED|ignored|peer-misbehaved|state-diverged) /.test(l));

          for (const l of caused.filter((x) => x.startsWith('  (lost: '))) {
            const who = l.slice('  (lost: '.length, l.indexOf(' is down'));
            lostAt.set(who, (lostAt.get(who) ?? 0) + 1);
          }
          caused = caused.filter((x) => !x.startsWith('  (lost: '));
          // quiet: rejections are summed up at the end, by reason.
          for (const l of caused) {
            const m = /^ {2}\d+ rejected (\S+)(?: \(x(\d+)\))?$/.exec(l);
            if (m) rejections.set(m[1]!, (rejections.get(m[1]!) ?? 0) + Number(m[2] ?? 1));
          }
          caused = caused.filter((x) => !/^ {2}\d+ rejected /.test(x));
          kept.push(...caused.map((l) => l.slice(2)));
        }
      }
      if (!repeat || limit <= 0) break;
    }
    if (quiet) {
      full.length = 0;
      full.push(...kept);
      if (rejections.size > 0) full.push(`(rejected: ${[...rejections].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([r, c]) => `${r} x${c}`).join(', ')})`);
      for (const [who, count] of [...lostAt].sort()) full.push(`(${count} message${count > 1 ? 's' : ''} to ${who} lost: it is down)`);
      if (silent) full.push(`(${delivered} messages delivered)`);
      else if (kept.length === 0) full.push('(nothing but messages)');
    }
  }

  private deliverOne(p: Pending): void {
    if (p.to >= this.n) return this.onClientFrame(this.clients[p.to - this.n]!, p.from, p.bytes);
    const host = this.hosts[p.to]!;
    if (!host.core) return this.line(`${this.prefix}(lost: ${host.id} is down)`);
    const source = p.from < this.n ? { kind: 'replica' as const, id: p.from } : { kind: 'client' as const, id: p.from - this.n };
    host.core.receive(source, p.bytes);
    this.turn(host);
  }

  /** `drop [filter] [limit=N]`: removes matching pending messages (lost by the network). */
  private drop(args: Arg[]): void {
    const match = this.matcher(args);
    const limit = this.num(args, 'limit') ?? Infinity;
    const gone = this.net.filter(match).slice(0, Number.isFinite(limit) ? limit : undefined);
    const set = new Set(gone);
    this.net = this.net.filter((p) => !set.has(p));
    for (const p of gone) this.line(`dropped ${this.name(p.from)}->${this.name(p.to)} ${p.text}`);
    if (gone.length === 0) this.line('(nothing to drop)');
  }

  /** `inject from=2 to=1 preprepare|prepare|commit v=0 s=1 batch=c0:1 [digest=null] [signer=0] [nobatch]`. */
  private inject(args: Arg[]): void {
    const fromArg = args.find((a) => a.key === 'from')?.vals[0];
    if (fromArg === undefined) throw new ScriptError('inject: from= is required');
    const from = this.replicaId(fromArg, 'inject from');
    const to = this.targets(args, this.allReplicas().filter((r) => r !== from));
    const type = args.find((a) => a.vals.length === 0 && ['preprepare', 'prepare', 'commit'].includes(a.key))?.key;
    if (!type) throw new ScriptError('inject: which message? preprepare | prepare | commit');
    const view = this.num(args, 'v') ?? 0;
    const seq = this.num(args, 's');
    if (seq === undefined) throw new ScriptError('inject: s= is required');
    const signer = this.num(args, 'signer') ?? from;
    const labels = args.find((a) => a.key === 'batch')?.vals ?? [];
    const batch = labels.map((l) => {
      const r = this.requests.get(l);
      if (!r) throw new ScriptError(`inject: no request ${l} (requests are named c<client>:<timestamp>)`);
      return r;
    });
    const digestArg = args.find((a) => a.key === 'digest')?.vals[0];
    const digest = digestArg === 'null' ? this.k.nullDigest : this.k.digest(batch);
    if (batch.length > 0) this.digestNames.set(hex(digest), `<${labels.join(',')}>`);
    let bytes: Uint8Array;
    if (type === 'preprepare') {
      const pp = this.k.prePrepare(view, seq, digest, signer, from);
      bytes = frame(pp, args.some((a) => a.key === 'nobatch') ? undefined : batch);
    } else if (type === 'prepare') {
      bytes = frame(this.k.signAs(signer, { type: 'prepare', view, seq, digest, replica: from }));
    } else {
      bytes = frame(this.k.signAs(signer, { type: 'commit', view, seq, digest, replica: from }));
    }
    this.prefix = '';
    this.send(from, to, bytes);
    if (signer !== from) this.line(`  (signed with the key of ${signer})`);
  }

  // --- replicas -------------------------------------------------------------------------------

  private replicasArg(args: Arg[], cmd: string, all = false): Host[] {
    const words = args.filter((a) => a.vals.length === 0 && /^\d+$/.test(a.key)).map((a) => a.key);
    const r = args.find((a) => a.key === 'r')?.vals ?? words;
    if (r.length === 0) {
      if (all) return this.hosts;
      throw new ScriptError(`${cmd}: which replica?`);
    }
    if (r.length === 1 && r[0] === 'all') return this.hosts;
    return r.map((v) => this.hosts[this.replicaId(v, cmd)]!);
  }

  private boot(host: Host): void {
    const app = new KvStore({ partitionCount: this.k.partitionCount });
    const core = this.k.newCore(host.id, app, this.options);
    core.now = host.ticks;
    // A wall clock that stands still: every batch time is PAPER_TIME_MS, so digests are named by
    // their requests alone (the rules of batch times have their own tests: test/paper/batch-time.test.ts).
    core.setClockMs(PAPER_TIME_MS);
    const disk = host.disk;
    core.recover(disk.entries(), disk.horizon !== undefined ? { horizon: disk.horizon } : {});
    const onDisk = disk.horizon === undefined ? undefined : decodeHorizon(disk.horizon);
    host.core = core;
    host.app = app;
    host.rejected = new Map();
    host.pipeline = new TurnPipeline(
      { write: (ops, clears, horizon, done) => disk.write({ ops, clears, horizon, done, dueAt: 0 }) },
      {
        release: (messages, replies, events) => this.release(host, messages, replies, events),
        fatal: (err) => {
          throw err;
        },
      },
      { ...DEFAULT_PIPELINE_OPTIONS, deferWrites: false, now: () => this.now * 10, ...(onDisk?.ok ? { horizonOnDisk: onDisk.value } : {}) },
    );
    this.turn(host);
  }

  /** One turn: flush the core, submit its Ready to the pipeline, sync unless the disk is manual. */
  private turn(host: Host): void {
    const core = host.core!;
    const ready = core.flush();
    host.pipeline!.submit(ready);
    if (!host.manual) this.syncAll(host);
    this.reportRejections(host);
  }

  private syncAll(host: Host): void {
    while (host.core && host.disk.inFlight) host.disk.complete();
  }

  private reportRejections(host: Host): void {
    const core = host.core;
    if (!core) return;
    for (const [reason, count] of [...core.rejected.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      const before = host.rejected.get(reason) ?? 0;
      if (count > before) this.line(`${this.prefix}${host.id} rejected ${reason}${count - before > 1 ? ` (x${count - before})` : ''}`);
      host.rejected.set(reason, count);
    }
  }

  /** What the pipeline lets leave (printed events first: they say why the messages follow). */
  private release(host: Host, messages: Sent[], replies: SentReply[], events: CoreEvent[]): void {
    for (const e of events) {
      const text = this.eventText(e);
      if (text) this.line(`${this.prefix}${host.id} ${text}`);
    }
    // Consecutive copies of one frame to several replicas print as one line.
    for (let i = 0; i < messages.length; ) {
      let j = i + 1;
      while (j < messages.length && messages[j]!.frame === messages[i]!.frame) j++;
      this.send(
        host.id,
        messages.slice(i, j).map((m) => m.to),
        messages[i]!.frame,
      );
      i = j;
    }
    for (const r of replies) this.send(host.id, [this.n + r.client], r.frame);
  }

  /**
   * `tick [r=1,2] [n=10] [quiet]`: n ticks; each is one turn of each ticked replica that is up (`t=` is
   * the replica's own clock). `quiet` prints events and rejections, not messages.
   */
  private tick(args: Arg[]): void {
    const count = this.num(args, 'n') ?? 1;
    const quiet = args.some((a) => a.key === 'quiet');
    const hosts = this.replicasArg(args.filter((a) => a.key !== 'quiet'), 'tick', true);
    for (let t = 0; t < count; t++) {
      this.now++;
      for (const h of hosts) {
        if (!h.core) continue;
        h.ticks++;
        this.prefix = `t=${h.ticks} `;
        h.core.tick();
        this.turn(h);
      }
    }
    this.prefix = '';
    if (quiet) {
      const sent = this.out.filter((l) => /^t=\d+ \S+->\S+ /.test(l)).length;
      this.out = this.out.filter((l) => !/^t=\d+ \S+->\S+ /.test(l));
      if (sent > 0) this.line(`(${sent} sends)`);
    }
    if (this.out.length === 0) this.line('(nothing happened)');
  }

  /** `crash 1 [lose-unsynced]`: the process dies; the batch being written lands unless lose-unsynced. */
  private crash(args: Arg[]): void {
    const lose = args.some((a) => a.key === 'lose-unsynced');
    for (const h of this.replicasArg(args, 'crash')) {
      if (!h.core) throw new ScriptError(`crash: replica ${h.id} is already down`);
      const inFlight = h.disk.inFlight !== undefined;
      const turns = h.pipeline!.undurableTurns;
      h.disk.crash(!lose);
      h.core = undefined;
      h.app = undefined;
      h.pipeline = undefined;
      const what = turns === 0 ? 'nothing unsynced' : `${turns} unsynced turn${turns > 1 ? 's' : ''}: ${inFlight ? (lose ? 'the write in flight is lost' : 'the write in flight lands') : 'nothing in flight'}${turns > (inFlight ? 1 : 0) ? ', turns not yet written are lost' : ''}`;
      this.line(`${h.id} crashed (${what})`);
    }
  }

  /** `restart 1`: a new core recovers from what its disk holds. */
  private restart(args: Arg[]): void {
    for (const h of this.replicasArg(args, 'restart')) {
      if (h.core) throw new ScriptError(`restart: replica ${h.id} is up`);
      this.prefix = '  ';
      const start = this.out.length;
      this.line('');
      this.boot(h);
      this.prefix = '';
      this.out[start] = `${h.id} restarted: ${this.statusLine(h).replace(/^\d+: /, '')}`;
    }
  }

  /** `disk 1 manual|auto`: manual keeps writes in flight until `sync 1`. */
  private disk(args: Arg[]): void {
    const manual = args.some((a) => a.key === 'manual');
    const auto = args.some((a) => a.key === 'auto');
    if (manual === auto) throw new ScriptError('disk: manual or auto?');
    for (const h of this.replicasArg(args, 'disk')) {
      h.manual = manual;
      this.line(`${h.id}: disk ${manual ? 'syncs only on sync' : 'syncs at once'}`);
      if (auto && h.core) this.syncAll(h);
    }
  }

  private statusLine(h: Host): string {
    const core = h.core;
    if (!core) return `${h.id}: down`;
    const s = core.status();
    const flags = [s.viewChanging ? ' view-changing' : '', s.transferring ? ' transferring' : '', s.recovering ? ` recovering(floor v=${s.recovering.view} s=${s.recovering.seq})` : ''].join('');
    const unsynced = h.pipeline!.undurableTurns;
    return (
      `${h.id}: view=${s.view} primary=${s.primary}${flags} executed=${s.lastExecuted} stable=${s.stableCheckpoint.seq} ` +
      `checkpoint=${s.lastCheckpoint.seq} log=${s.logSlots} waiting=${s.waitingRequests}${unsynced > 0 ? ` unsynced-turns=${unsynced}` : ''}`
    );
  }

  /** `kv a b [r=...]`: the value of each key at each replica. */
  private kv(args: Arg[]): void {
    const keys = args.filter((a) => a.vals.length === 0).map((a) => a.key);
    const r = args.find((a) => a.key === 'r');
    const hosts = r ? this.replicasArg([r], 'kv') : this.hosts;
    for (const h of hosts) {
      if (!h.app) {
        this.line(`${h.id}: down`);
        continue;
      }
      this.line(`${h.id}: ${keys.map((key) => `${key}=${resultText({ type: 'get', value: h.app!.get(key) })}`).join(' ')}`);
    }
  }

  private line(s: string): void {
    this.out.push(s);
  }

  // ==============================================================================================
  // Printing
  // ==============================================================================================

  private digestName(d: Uint8Array): string {
    return this.digestNames.get(hex(d)) ?? hex(d).slice(0, 8);
  }

  private batchName(batch: readonly Signed<RequestMsg>[], digest: Uint8Array): string {
    const label = batch.length === 0 ? 'null' : `<${batch.map((r) => `c${r.msg.client}:${r.msg.timestamp}`).join(',')}>`;
    if (!this.digestNames.has(hex(digest))) this.digestNames.set(hex(digest), label);
    return label;
  }

  private requestText(r: RequestMsg): string {
    const op = decodeOpSafe(r.op);
    return `c${r.client}:${r.timestamp} ${op}`;
  }

  describe(bytes: Uint8Array): { type: string; view?: number; seq?: number; text: string } {
    const d = decodeFrame(bytes);
    if (!d.ok) return { type: 'malformed', text: `malformed (${d.reason})` };
    const fr = d.value;
    if (fr.kind === 'link') return this.linkText(fr.msg);
    if (fr.kind === 'reply') {
      const m = fr.reply.msg;
      return { type: 'reply', view: m.view, text: `reply v=${m.view} c${m.client}:${m.timestamp} ${resultOf(m.result)}` };
    }
    const m = fr.signed.msg as SignedMessage;
    switch (m.type) {
      case 'request':
        return { type: 'request', text: `request ${this.requestText(m)}` };
      case 'preprepare': {
        const batch = fr.batch;
        const label = batch ? this.batchName(batch, m.digest) : this.digestName(m.digest);
        const ops = batch && batch.length > 0 ? ` [${batch.map((r) => this.requestText(r.msg).replace(/^c\d+:\d+ /, '')).join('; ')}]` : '';
        return { type: 'preprepare', view: m.view, seq: m.seq, text: `preprepare v=${m.view} s=${m.seq} ${label}${ops}${batch ? '' : ' (no batch)'}` };
      }
      case 'prepare':
      case 'commit':
        return { type: m.type, view: m.view, seq: m.seq, text: `${m.type} v=${m.view} s=${m.seq} ${this.digestName(m.digest)}` };
      case 'checkpoint':
        return { type: 'checkpoint', seq: m.seq, text: `checkpoint s=${m.seq} state=${hex(m.digest).slice(0, 8)}` };
      case 'viewchange': {
        const prepared = m.prepared.map((c) => `s${c.prePrepare.msg.seq}:v${c.prePrepare.msg.view}:${this.digestName(c.prePrepare.msg.digest)}`);
        return { type: 'viewchange', view: m.view, text: `viewchange v=${m.view} stable=${m.checkpoint.seq} prepared=[${prepared.join(' ')}]` };
      }
      case 'newview': {
        const vcs = m.viewChanges.map((v) => v.msg.replica).sort((a, b) => a - b);
        const pps = m.prePrepares.map((p) => `s${p.msg.seq}:${this.digestName(p.msg.digest)}`);
        return { type: 'newview', view: m.view, text: `newview v=${m.view} viewchanges=${vcs.join(',')} preprepares=[${pps.join(' ')}]` };
      }
      case 'reply':
        return { type: 'reply', view: m.view, text: `reply v=${m.view} c${m.client}:${m.timestamp} ${resultOf(m.result)}` };
      case 'replybatch':
        return { type: 'replybatch', view: m.view, seq: m.seq, text: `replybatch v=${m.view} s=${m.seq}` };
      case 'refusal':
        return { type: 'refusal', text: `refusal c${m.client}:${m.timestamp} ${m.reason}` };
      case 'suspect':
        return { type: 'suspect', view: m.view, text: `suspect v=${m.view}` };
      case 'read':
        return { type: 'read', text: `read c${m.client}:${m.timestamp} ${decodeOpSafe(m.op)}` };
      case 'readreply':
        return { type: 'readreply', text: `readreply c${m.client}:${m.timestamp} epoch=${m.epoch} ${resultOf(m.result)}` };
    }
  }

  private linkText(m: LinkMessage): { type: string; view?: number; seq?: number; text: string } {
    switch (m.type) {
      case 'fetch':
        return { type: 'fetch', text: `fetch ${m.from}..${m.to}` };
      case 'fetched':
        return { type: 'fetched', text: `fetched [${m.entries.map((e) => e.seq).join(',')}] stable=${m.stable.seq}` };
      case 'batchreq':
        return { type: 'batchreq', seq: m.seq, text: `batchreq s=${m.seq} ${this.digestName(m.digest)}` };
      case 'batch':
        return { type: 'batch', seq: m.seq, text: `batch s=${m.seq} ${this.batchName(m.batch, m.digest)}` };
      case 'statereq':
        return { type: 'statereq', seq: m.seq, text: `statereq s=${m.seq} ${m.part.kind}` };
      case 'state':
        return { type: 'state', seq: m.seq, text: `state s=${m.seq} ${m.reply.kind}` };
      case 'newviewreq':
        return { type: 'newviewreq', view: m.view, text: `newviewreq v=${m.view}` };
      case 'epochsreq':
        return { type: 'epochsreq', text: `epochsreq e>${m.epoch}` };
      case 'epochs':
        return { type: 'epochs', text: `epochs [${m.proofs.map((p) => p.epoch).join(',')}]` };
    }
  }

  private eventText(e: CoreEvent): string | undefined {
    switch (e.type) {
      case 'executed':
        return `executed s=${e.seq} v=${e.view}${e.requests.map((r) => ` c${r.client}:${r.timestamp}=${resultOf(r.result)}`).join('')}${e.requests.length === 0 ? ' (null)' : ''}`;
      case 'committed':
        return `committed s=${e.seq} ${this.digestName(e.digest)}`;
      case 'view-change-started':
        return `view-change-started v=${e.view} (${e.reason})`;
      case 'primary-suspected':
        return `primary-suspected v=${e.view} (${e.reason})`;
      case 'view-entered':
        return `view-entered v=${e.view} primary=${e.primary}`;
      case 'checkpoint-stable':
        return `checkpoint-stable s=${e.seq} state=${hex(e.digest).slice(0, 8)}`;
      case 'state-diverged':
        return `state-diverged s=${e.seq}`;
      case 'stored-state-corrupt':
        return `stored-state-corrupt s=${e.seq} (${e.reason})`;
      case 'stored-state-lost':
        return `stored-state-lost (${e.reasons.join('; ')}) floor v=${e.floor.view} s=${e.floor.seq}`;
      case 'signing-resumed':
        return `signing-resumed v=${e.view} stable=${e.stable}`;
      case 'state-transfer-started':
        return `state-transfer-started s=${e.seq} (${e.reason})`;
      case 'state-transfer-completed':
        return `state-transfer-completed s=${e.seq} partitions=${e.partitionsFetched}/${e.partitionCount}`;
      case 'peer-misbehaved':
        return `peer-misbehaved ${e.peer} ${e.code} (${e.reason})`;
    }
  }
}

function resultOf(bytes: Uint8Array): string {
  const r = decodeResult(bytes);
  return r.ok ? resultText(r.value) : '(undecodable result)';
}

function decodeOpSafe(bytes: Uint8Array): string {
  const r = decodeOp(bytes);
  return r.ok ? opText(r.value) : `(${bytes.length} bytes)`;
}
