/**
 * Equivocation evidence: two statements signed by one replica that no correct replica ever signs
 * together. Pure data and pure functions (no I/O): the core keeps what it sees, the shell serves it,
 * the CLI and the simulator verify it with `EvidenceVerifier`, the SDK builds reply evidence.
 *
 *   votes    two PRE-PREPAREs, PREPAREs or COMMITs (of one kind, or of two: `mixed`) with the same
 *            signer, view and sequence number and different digests. A correct replica accepts one
 *            pre-prepare per (view, seq) and every vote it signs for that slot names its digest (the
 *            primary's PRE-PREPARE and COMMIT, a backup's PREPARE and COMMIT), across crashes too (it
 *            writes what it signs before sending it, and a replica that lost data signs nothing it
 *            may have signed before: horizon.ts). CometBFT's DuplicateVoteEvidence is the same idea.
 *   replies  two signed replies of one replica for one (client, timestamp) with different results.
 *            A correct replica executes each (client, timestamp) at most once and re-sends the cached
 *            result (re-signed with its current view: a different view alone is no conflict). A reply
 *            is signed on its own (REPLY) or as a leaf of a signed REPLY-BATCH root with its Merkle
 *            path (replytree.ts). This is what a client sees, so a client can hold a replica to account.
 *
 * Every piece of evidence carries the exact signed bytes (bodies and signatures, never re-encoded)
 * and the epoch of the configuration whose key signed them; a third party verifies it offline with
 * cluster.json and, for epochs after the keyring's, the epoch proofs in the file (epochproof.ts).
 *
 * File format (JSON; README "Equivocation evidence"):
 *
 *   { "format": "pbft-evidence", "version": 1, "clusterId": "...",
 *     "evidence": [ item, ... ],
 *     "epochProofs": [ "<hex of a CBOR epoch proof>", ... ] }          (epochs 1.., oldest first)
 *   item, votes:   { "kind": "preprepare" | "prepare" | "commit" | "mixed", "signer", "epoch", "view", "seq",
 *                    "messages": [ { "body": hex, "sig": hex }, { "body": hex, "sig": hex } ],
 *                    "reportedBy": "replica 1" }                          (reportedBy: informative)
 *   item, replies: { "kind": "reply", "signer", "epoch", "client", "timestamp",
 *                    "messages": [ reply, reply ] }, each reply either { "body": hex, "sig": hex }
 *                    (a REPLY) or { "batch": { "body", "sig" }, "client", "timestamp", "result": hex,
 *                    "index", "path": [hex, ...] } (a leaf of a REPLY-BATCH)
 *
 * Not covered: reply evidence assumes a client id is never removed and registered again (the
 * replicas forget a removed client's timestamps, so a client that is added again under the same id
 * and reuses a timestamp could get a second, different result from a correct replica; the SDK's
 * timestamps are microseconds of the wall clock, so it does not do that by accident).
 */
import { bytesEqual, concatBytes, domainTag, toHex } from './auth.ts';
import { decodeBody, SIGNATURE_LENGTH } from './body.ts';
import type { ClusterConfig } from './cluster.ts';
import { asArray, asBytes, asUint, decodeCbor, encodeCbor, fail, guarded, type Decoded } from './encoding.ts';
import { followEpochProofs, type ProofCrypto } from './epochproof.ts';
import { genesisMembership, type MemberConfig } from './membership.ts';
import type { AnyReply, BatchedReply, CommitMsg, EpochProof, PrePrepareMsg, PrepareMsg, ReplyBatchMsg, ReplyMsg, Signed, SignedMessage } from './messages.ts';
import { decodeEpochProof, encodeEpochProof } from './persist.ts';
import { replyLeaf, replyRootFromPath } from './replytree.ts';

export const EVIDENCE_FORMAT = 'pbft-evidence';
export const EVIDENCE_VERSION = 1;

/** Vote evidence: two messages of one kind, or `mixed` (e.g. a PRE-PREPARE and a COMMIT). */
export const VOTE_KINDS = ['preprepare', 'prepare', 'commit', 'mixed'] as const;
export type VoteKind = (typeof VOTE_KINDS)[number];
export type VoteMsg = PrePrepareMsg | PrepareMsg | CommitMsg;
export const EVIDENCE_KINDS = [...VOTE_KINDS, 'reply'] as const;
export type EvidenceKind = (typeof EVIDENCE_KINDS)[number];

/** Two conflicting votes of one replica for one (view, seq). */
export interface VoteEvidence {
  kind: VoteKind;
  signer: number;
  /** The configuration whose key signed both (0: the keyring's; membership.ts). */
  epoch: number;
  view: number;
  seq: number;
  /** Ordered by digest (deterministic whoever saw them first). */
  messages: readonly [Signed<VoteMsg>, Signed<VoteMsg>];
}

/** Two signed replies of one replica for one request with different results. */
export interface ReplyEvidence {
  kind: 'reply';
  signer: number;
  epoch: number;
  client: number;
  timestamp: number;
  /** Ordered by result bytes. */
  messages: readonly [AnyReply, AnyReply];
}

export type Evidence = VoteEvidence | ReplyEvidence;

const NAMES: Record<VoteMsg['type'] | 'reply', string> = { preprepare: 'PRE-PREPARE', prepare: 'PREPARE', commit: 'COMMIT', reply: 'REPLY' };

export function isVote(m: SignedMessage): m is VoteMsg {
  return m.type === 'preprepare' || m.type === 'prepare' || m.type === 'commit';
}

function isBatched(r: AnyReply): r is BatchedReply {
  return 'batch' in r;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** Why two signed votes are not an equivocation; undefined when they are (signatures are checked apart). */
export function voteConflict(a: Signed, b: Signed): string | undefined {
  const x = a.msg;
  const y = b.msg;
  if (!isVote(x) || !isVote(y)) return 'not PRE-PREPARE, PREPARE or COMMIT messages';
  if (x.replica !== y.replica) return `signed by two different replicas (${x.replica} and ${y.replica})`;
  if (x.view !== y.view || x.seq !== y.seq) return `different slots (view ${x.view}, seq ${x.seq} and view ${y.view}, seq ${y.seq})`;
  if (bytesEqual(x.digest, y.digest)) return 'the same digest: the two messages agree';
  return undefined;
}

/** Why two replies are not an equivocation; undefined when they are (signatures are checked apart). */
export function replyConflict(a: AnyReply, b: AnyReply): string | undefined {
  const x = a.msg;
  const y = b.msg;
  if (x.replica !== y.replica) return `signed by two different replicas (${x.replica} and ${y.replica})`;
  if (x.client !== y.client || x.timestamp !== y.timestamp) return `replies to different requests (client ${x.client} at ${x.timestamp} and client ${y.client} at ${y.timestamp})`;
  if (bytesEqual(x.result, y.result)) return 'the same result: the two replies agree';
  return undefined;
}

/** The kind of evidence two votes make: their type, or `mixed`. */
export function voteKindOf(a: VoteMsg, b: VoteMsg): VoteKind {
  return a.type === b.type ? a.type : 'mixed';
}

/** Evidence from two conflicting votes (voteConflict must hold). */
export function voteEvidence(a: Signed<VoteMsg>, b: Signed<VoteMsg>, epoch: number): VoteEvidence {
  const [first, second] = compareBytes(a.msg.digest, b.msg.digest) <= 0 ? [a, b] : [b, a];
  const m = first.msg;
  return { kind: voteKindOf(a.msg, b.msg), signer: m.replica, epoch, view: m.view, seq: m.seq, messages: [first, second] };
}

/** Evidence from two conflicting replies (replyConflict must hold). */
export function replyEvidence(a: AnyReply, b: AnyReply, epoch: number): ReplyEvidence {
  const [first, second] = compareBytes(a.msg.result, b.msg.result) <= 0 ? [a, b] : [b, a];
  const m = first.msg;
  return { kind: 'reply', signer: m.replica, epoch, client: m.client, timestamp: m.timestamp, messages: [first, second] };
}

/** One piece of evidence per signer and statement: what a store keeps at most once. */
export function evidenceKey(e: Evidence): string {
  return e.kind === 'reply' ? `reply/${e.signer}/${e.client}/${e.timestamp}` : `${e.kind}/${e.signer}/${e.view}/${e.seq}`;
}

/** One line describing what the evidence says (not whether it verifies). */
export function describeEvidence(e: Evidence): string {
  if (e.kind === 'reply') {
    return `replica ${e.signer} signed two different results for the request of client ${e.client} at timestamp ${e.timestamp}`;
  }
  const [a, b] = e.messages;
  const what = e.kind === 'mixed' ? `a ${NAMES[a.msg.type]} and a ${NAMES[b.msg.type]} with different digests` : `two different ${NAMES[e.kind]}s`;
  return `replica ${e.signer} signed ${what} for view ${e.view}, seq ${e.seq} (digests ${toHex(a.msg.digest).slice(0, 12)} and ${toHex(b.msg.digest).slice(0, 12)})`;
}

// --- the core's bounded store ----------------------------------------------------------------------

/** Evidence a replica keeps at most, in all and per signer (a faulty replica cannot crowd out the others). */
export const EVIDENCE_HELD_MAX = 256;
export const EVIDENCE_PER_SIGNER_MAX = 16;

export type StoreOutcome = 'added' | 'known' | 'full';

/**
 * Evidence held by a replica (votes): one per (kind, signer, view, seq), the first ones seen, at most
 * EVIDENCE_PER_SIGNER_MAX per signer and EVIDENCE_HELD_MAX in all. Conflicts beyond the caps are
 * counted (`notKept`), not kept, and their signatures not checked. Deterministic: insertion order.
 */
export class EvidenceStore {
  private readonly byKey = new Map<string, VoteEvidence>();
  private readonly perSigner = new Map<number, number>();
  /** Conflicts seen when a cap was reached (not kept; their signatures were not checked). */
  notKept = 0;

  constructor(
    readonly heldMax = EVIDENCE_HELD_MAX,
    readonly perSignerMax = EVIDENCE_PER_SIGNER_MAX,
  ) {}

  /** Whether evidence with this key would be kept (not known, no cap reached); counts a refusal. */
  wants(key: string, signer: number): boolean {
    if (this.byKey.has(key)) return false;
    if (this.byKey.size >= this.heldMax || (this.perSigner.get(signer) ?? 0) >= this.perSignerMax) {
      this.notKept++;
      return false;
    }
    return true;
  }

  add(e: VoteEvidence): StoreOutcome {
    const key = evidenceKey(e);
    if (this.byKey.has(key)) return 'known';
    const count = this.perSigner.get(e.signer) ?? 0;
    if (this.byKey.size >= this.heldMax || count >= this.perSignerMax) return 'full';
    this.byKey.set(key, e);
    this.perSigner.set(e.signer, count + 1);
    return 'added';
  }

  get size(): number {
    return this.byKey.size;
  }

  list(): VoteEvidence[] {
    return [...this.byKey.values()];
  }

  /** Held evidence by kind, and the replicas it names (ascending). */
  summary(): { held: number; byKind: Record<VoteKind, number>; signers: number[]; notKept: number } {
    const byKind: Record<VoteKind, number> = { preprepare: 0, prepare: 0, commit: 0, mixed: 0 };
    for (const e of this.byKey.values()) byKind[e.kind]++;
    return { held: this.byKey.size, byKind, signers: [...this.perSigner.keys()].sort((a, b) => a - b), notKept: this.notKept };
  }
}

/** The durable record of one piece of vote evidence: [epoch, [body, sig], [body, sig]]. */
export function encodeVoteEvidence(e: VoteEvidence): Uint8Array {
  return encodeCbor([e.epoch, e.messages.map((s) => [s.body, s.sig])]);
}

export function decodeVoteEvidence(bytes: Uint8Array): Decoded<VoteEvidence> {
  return guarded(() => {
    const d = decodeCbor(bytes);
    if (!d.ok) fail(d.reason);
    const a = asArray(d.value, 'evidence', 2);
    const pairs = asArray(a[1], 'evidence.messages', 2);
    if (pairs.length !== 2) fail('evidence: expected two messages');
    const [x, y] = pairs.map((p) => {
      const pair = asArray(p, 'evidence.message', 2);
      return signedOf(asBytes(pair[0], 'body'), asBytes(pair[1], 'sig', SIGNATURE_LENGTH));
    }) as [Signed, Signed];
    const why = voteConflict(x, y);
    if (why !== undefined) fail(`evidence: ${why}`);
    return voteEvidence(x as Signed<VoteMsg>, y as Signed<VoteMsg>, asUint(a[0], 'evidence.epoch'));
  });
}

function signedOf(body: Uint8Array, sig: Uint8Array): Signed {
  const m = decodeBody(body);
  if (!m.ok) fail(m.reason);
  return { msg: m.value, body, sig };
}

// --- the file format ------------------------------------------------------------------------------

export interface SignedJson {
  body: string;
  sig: string;
}

export interface BatchedReplyJson {
  batch: SignedJson;
  client: number;
  timestamp: number;
  result: string;
  index: number;
  path: string[];
}

export interface EvidenceJson {
  kind: EvidenceKind;
  signer: number;
  epoch: number;
  view?: number;
  seq?: number;
  client?: number;
  timestamp?: number;
  messages: Array<SignedJson | BatchedReplyJson>;
  /** Who reported it (informative; not part of what is verified). */
  reportedBy?: string;
}

export interface EvidenceFileJson {
  format: typeof EVIDENCE_FORMAT;
  version: typeof EVIDENCE_VERSION;
  clusterId: string;
  evidence: EvidenceJson[];
  /** CBOR epoch proofs (hex), oldest first: what proves the keys of epochs after the keyring's. */
  epochProofs: string[];
}

/** A piece of evidence and who reported it. */
export interface ReportedEvidence {
  evidence: Evidence;
  reportedBy?: string;
}

export interface EvidenceFile {
  clusterId: string;
  items: ReportedEvidence[];
  proofs: EpochProof[];
}

const signedJson = (s: Signed): SignedJson => ({ body: toHex(s.body), sig: toHex(s.sig) });

function replyJson(r: AnyReply): SignedJson | BatchedReplyJson {
  if (!isBatched(r)) return signedJson(r);
  return { batch: signedJson(r.batch), client: r.msg.client, timestamp: r.msg.timestamp, result: toHex(r.msg.result), index: r.index, path: r.path.map(toHex) };
}

export function evidenceToJson(e: Evidence, reportedBy?: string): EvidenceJson {
  const tail = reportedBy !== undefined ? { reportedBy } : {};
  if (e.kind === 'reply') {
    return { kind: e.kind, signer: e.signer, epoch: e.epoch, client: e.client, timestamp: e.timestamp, messages: e.messages.map(replyJson), ...tail };
  }
  return { kind: e.kind, signer: e.signer, epoch: e.epoch, view: e.view, seq: e.seq, messages: e.messages.map(signedJson), ...tail };
}

/**
 * The file for `items`, with the proofs of every epoch from 1 to the newest an item names (those
 * `proofs` holds; a missing one makes those items unverifiable, and verify says so).
 */
export function evidenceFileJson(clusterId: string, items: readonly ReportedEvidence[], proofs: ReadonlyMap<number, EpochProof> | readonly EpochProof[]): EvidenceFileJson {
  const byEpoch = proofs instanceof Map ? proofs : new Map((proofs as readonly EpochProof[]).map((p) => [p.epoch, p]));
  const newest = Math.max(0, ...items.map((i) => i.evidence.epoch));
  const chain: string[] = [];
  for (let e = 1; e <= newest; e++) {
    const p = byEpoch.get(e);
    if (p === undefined) break;
    chain.push(toHex(encodeEpochProof(p)));
  }
  return {
    format: EVIDENCE_FORMAT,
    version: EVIDENCE_VERSION,
    clusterId,
    evidence: items.map((i) => evidenceToJson(i.evidence, i.reportedBy)),
    epochProofs: chain,
  };
}

/** Bounds on what a file may hold (it comes from anyone). */
export const EVIDENCE_FILE_ITEMS_MAX = 100_000;
const EPOCH_PROOFS_MAX = 100_000;
const PATH_LENGTH_MAX = 64;

const HEX_RE = /^(?:[0-9a-f]{2})*$/;

function hexField(v: unknown, what: string, length?: number): Uint8Array {
  if (typeof v !== 'string' || !HEX_RE.test(v)) fail(`${what}: expected lowercase hex`);
  const out = new Uint8Array(v.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(v.slice(2 * i, 2 * i + 2), 16);
  if (length !== undefined && out.length !== length) fail(`${what}: expected ${length} bytes, got ${out.length}`);
  return out;
}

function objectField(v: unknown, what: string): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(`${what}: expected an object`);
  return v as Record<string, unknown>;
}

function signedFromJson(v: unknown, what: string): Signed {
  const o = objectField(v, what);
  return signedOf(hexField(o.body, `${what}.body`), hexField(o.sig, `${what}.sig`, SIGNATURE_LENGTH));
}

function replyFromJson(v: unknown, what: string): AnyReply {
  const o = objectField(v, what);
  if (!('batch' in o)) {
    const s = signedFromJson(o, what);
    if (s.msg.type !== 'reply') fail(`${what}: a ${s.msg.type}, not a reply`);
    return s as Signed<ReplyMsg>;
  }
  const batch = signedFromJson(o.batch, `${what}.batch`);
  if (batch.msg.type !== 'replybatch') fail(`${what}.batch: a ${batch.msg.type}, not a reply batch`);
  const b = batch.msg;
  const path = asArray(o.path, `${what}.path`, PATH_LENGTH_MAX).map((p, i) => hexField(p, `${what}.path[${i}]`, 32));
  const msg: ReplyMsg = {
    type: 'reply',
    view: b.view,
    replica: b.replica,
    client: asUint(o.client, `${what}.client`),
    timestamp: asUint(o.timestamp, `${what}.timestamp`),
    result: hexField(o.result, `${what}.result`),
  };
  return { msg, batch: batch as Signed<ReplyBatchMsg>, index: asUint(o.index, `${what}.index`), path };
}

function itemFromJson(v: unknown, what: string): ReportedEvidence {
  const o = objectField(v, what);
  const kind = o.kind;
  if (typeof kind !== 'string' || !(EVIDENCE_KINDS as readonly string[]).includes(kind)) fail(`${what}.kind: expected one of ${EVIDENCE_KINDS.join(', ')}`);
  const messages = asArray(o.messages, `${what}.messages`, 2);
  if (messages.length !== 2) fail(`${what}.messages: expected two messages`);
  const signer = asUint(o.signer, `${what}.signer`);
  const epoch = asUint(o.epoch, `${what}.epoch`);
  const reportedBy = typeof o.reportedBy === 'string' ? o.reportedBy.slice(0, 200) : undefined;
  let evidence: Evidence;
  if (kind === 'reply') {
    const [a, b] = messages.map((m, i) => replyFromJson(m, `${what}.messages[${i}]`)) as [AnyReply, AnyReply];
    evidence = { kind, signer, epoch, client: asUint(o.client, `${what}.client`), timestamp: asUint(o.timestamp, `${what}.timestamp`), messages: [a, b] };
  } else {
    const [a, b] = messages.map((m, i) => signedFromJson(m, `${what}.messages[${i}]`)) as [Signed<VoteMsg>, Signed<VoteMsg>];
    evidence = { kind: kind as VoteKind, signer, epoch, view: asUint(o.view, `${what}.view`), seq: asUint(o.seq, `${what}.seq`), messages: [a, b] };
  }
  return reportedBy !== undefined ? { evidence, reportedBy } : { evidence };
}

/**
 * Reads an evidence file (parsed JSON). The messages are decoded from their signed bytes; what the
 * item's header says (signer, view, ...) is kept as written, for verify to compare with them.
 */
export function parseEvidenceFile(json: unknown): Decoded<EvidenceFile> {
  return guarded(() => {
    const o = objectField(json, 'evidence file');
    if (o.format !== EVIDENCE_FORMAT) fail(`not an evidence file (its "format" is not "${EVIDENCE_FORMAT}")`);
    if (o.version !== EVIDENCE_VERSION) fail(`evidence file version ${JSON.stringify(o.version)} is not supported (this version reads ${EVIDENCE_VERSION})`);
    if (typeof o.clusterId !== 'string' || o.clusterId.length === 0) fail('evidence file: "clusterId" must be a non-empty string');
    const items = asArray(o.evidence, 'evidence', EVIDENCE_FILE_ITEMS_MAX).map((v, i) => itemFromJson(v, `evidence[${i}]`));
    const proofs = asArray(o.epochProofs ?? [], 'epochProofs', EPOCH_PROOFS_MAX).map((v, i) => {
      const p = decodeEpochProof(hexField(v, `epochProofs[${i}]`));
      if (!p.ok) fail(`epochProofs[${i}]: ${p.reason}`);
      return p.value;
    });
    return { clusterId: o.clusterId, items, proofs };
  });
}

// --- verification ---------------------------------------------------------------------------------

export type EvidenceVerdict =
  | { ok: true; signer: number; epoch: number; publicKey: Uint8Array; verdict: string }
  | { ok: false; reason: string };

/**
 * Verifies evidence with nothing but the keyring (cluster.json) and the epoch proofs given: both
 * messages carry valid signatures of the replica they name, under its key in the configuration
 * the evidence names, and they truly conflict (same signer, same slot or request, different
 * content). The keys of later configurations come only from proofs checked link by link from the
 * keyring's (epochproof.ts), never from the file's say-so.
 */
export class EvidenceVerifier {
  private readonly configs = new Map<number, MemberConfig | string>();
  private readonly tags = new Map<string, Uint8Array>();

  constructor(
    readonly genesis: ClusterConfig,
    private readonly proofs: readonly EpochProof[],
    private readonly crypto: ProofCrypto,
  ) {
    this.configs.set(0, genesisMembership(genesis).current);
  }

  /** The configuration of `epoch` reached from the keyring through the proofs, or why not. */
  configOf(epoch: number): MemberConfig | string {
    const known = this.configs.get(epoch);
    if (known !== undefined) return known;
    const upTo = this.proofs.filter((p) => p.epoch <= epoch);
    const r = followEpochProofs(this.genesis.clusterId, this.configs.get(0) as MemberConfig, upTo, this.crypto);
    const out = r.config.epoch === epoch ? r.config : `the keys of epoch ${epoch} are not proven: ${r.reason ?? `no epoch proof after epoch ${r.config.epoch} in the file`}`;
    this.configs.set(epoch, out);
    return out;
  }

  private tag(type: Signed['msg']['type']): Uint8Array {
    let t = this.tags.get(type);
    if (t === undefined) this.tags.set(type, (t = domainTag(this.genesis.clusterId, type)));
    return t;
  }

  private signatureOk(key: Uint8Array, s: Signed): boolean {
    return this.crypto.verify(key, concatBytes(this.tag(s.msg.type), s.body), s.sig);
  }

  /** A reply's signature: on its own, or of the batch root its leaf and path lead to. */
  private replySignatureOk(key: Uint8Array, r: AnyReply): string | undefined {
    if (!isBatched(r)) return this.signatureOk(key, r) ? undefined : 'the signature of a REPLY does not verify';
    const b = r.batch.msg;
    const m = r.msg;
    if (b.replica !== m.replica || b.view !== m.view) return 'a reply leaf names another replica or view than its batch';
    const root = replyRootFromPath(this.crypto.hash, replyLeaf(this.crypto.hash, m.client, m.timestamp, m.result), r.index, b.count, r.path);
    if (root === undefined || !bytesEqual(root, b.root)) return "a reply leaf's Merkle path does not lead to its batch's signed root";
    return this.signatureOk(key, r.batch) ? undefined : 'the signature of a REPLY-BATCH does not verify';
  }

  verify(e: Evidence): EvidenceVerdict {
    const no = (reason: string): EvidenceVerdict => ({ ok: false, reason });
    let conflict: string | undefined;
    if (e.kind === 'reply') {
      conflict = replyConflict(e.messages[0], e.messages[1]);
      if (conflict === undefined) {
        const m = e.messages[0].msg;
        if (m.replica !== e.signer || m.client !== e.client || m.timestamp !== e.timestamp) conflict = 'the evidence names another signer or request than its replies';
      }
    } else {
      conflict = voteConflict(e.messages[0], e.messages[1]);
      if (conflict === undefined) {
        const m = e.messages[0].msg as VoteMsg;
        if (voteKindOf(m, e.messages[1].msg as VoteMsg) !== e.kind || m.replica !== e.signer || m.view !== e.view || m.seq !== e.seq) conflict = 'the evidence names another kind, signer or slot than its messages';
      }
    }
    if (conflict !== undefined) return no(`no conflict: ${conflict}`);
    const config = this.configOf(e.epoch);
    if (typeof config === 'string') return no(config);
    const member = config.replicas.find((r) => r.id === e.signer);
    if (member === undefined) return no(`unknown signer: replica ${e.signer} is not a member of epoch ${e.epoch}`);
    for (const [i, m] of e.messages.entries()) {
      const bad =
        e.kind === 'reply'
          ? this.replySignatureOk(member.publicKey, m as AnyReply)
          : this.signatureOk(member.publicKey, m as Signed)
            ? undefined
            : `the signature of the ${NAMES[(m as Signed<VoteMsg>).msg.type]} does not verify`;
      if (bad !== undefined) return no(`message ${i + 1}: ${bad} with replica ${e.signer}'s key of epoch ${e.epoch}`);
    }
    return { ok: true, signer: e.signer, epoch: e.epoch, publicKey: member.publicKey, verdict: `${describeEvidence(e)}; both signatures verify with its key ${toHex(member.publicKey).slice(0, 16)} of epoch ${e.epoch}` };
  }
}

export type FileVerdict = { ok: true; file: EvidenceFile; verdicts: EvidenceVerdict[] } | { ok: false; reason: string };

/**
 * What `pbft evidence verify` does with a file (parsed JSON) and the keyring: reads it, checks that
 * it speaks of the keyring's cluster and holds evidence, and verifies every piece (EvidenceVerifier).
 */
export function verifyEvidenceFile(json: unknown, genesis: ClusterConfig, crypto: ProofCrypto): FileVerdict {
  const parsed = parseEvidenceFile(json);
  if (!parsed.ok) return { ok: false, reason: parsed.reason };
  const file = parsed.value;
  if (file.clusterId !== genesis.clusterId) return { ok: false, reason: `the evidence is about cluster "${file.clusterId}", the keyring is of cluster "${genesis.clusterId}"` };
  if (file.items.length === 0) return { ok: false, reason: 'the file holds no evidence' };
  const verifier = new EvidenceVerifier(genesis, file.proofs, crypto);
  return { ok: true, file, verdicts: file.items.map((i) => verifier.verify(i.evidence)) };
}
