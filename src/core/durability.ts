/**
 * The durability contract: what must be on disk before each outbound effect may leave.
 *
 * Every `flush()` of the core returns a Ready numbered 1, 2, 3, ... (per incarnation). Its writes
 * (one batch, all or nothing) are "durable through k" once the writes of Ready k and of every Ready
 * before it are synced. Each outbound effect names the Ready whose durability it waits for
 * (`after`); the shell (src/node/pipeline.ts, shared with the simulator) sends it as soon as the
 * writes are durable through `after`, and never before. `after: 0` means "depends on nothing".
 *
 * THE RULE (this file is the only place that decides it):
 *
 * 1. A message to a replica (PRE-PREPARE, PREPARE, COMMIT, CHECKPOINT, VIEW-CHANGE, NEW-VIEW, and the
 *    link messages that serve log entries, batches and state) waits for the writes of its own Ready:
 *    everything the replica signed or learned up to that turn, its own statement included. A replica
 *    that crashes and restarts therefore never contradicts a statement that left it.
 *
 * 2. A reply (REPLY, or a REPLY-BATCH root with its Merkle path) waits for the Ready in which the
 *    replica wrote its own COMMIT and prepared certificate for the sequence number that produced the
 *    result, and for every sequence number executed before it (a running maximum). Reason: the
 *    replica counted its own COMMIT toward the 2f+1 that let it execute. If that COMMIT were lost in
 *    a crash, a view-change quorum could hold no prepared certificate for the sequence number (the
 *    restarted replica and one byzantine replica suffice), the next primary could order another
 *    request there, and the replica would sign a second, different result for the same request: a
 *    client that accepted the first (this reply plus a byzantine one) would see it reversed. Once the
 *    COMMIT is durable, 2f+1 COMMITs include f+1 from correct replicas that hold durable prepared
 *    certificates, and every view-change quorum of 2f+1 contains one of them. A batch executed on a
 *    commit certificate of 2f+1 other replicas (fetched entries) adds no dependency of its own; one
 *    covered by a stable checkpoint certificate (state transfer) neither.
 *    Replies usually leave at once: the COMMIT was written in an earlier turn, when the replica
 *    became prepared, and the commits of the others arrive later. Only a replica that becomes
 *    prepared and committed in one turn waits for that turn's write.
 *
 * 3. Events (executed, committed, view entered, ...) report state and are performed after the writes
 *    of their own Ready, like rule 1.
 *
 * 4. A REFUSAL (a request the protocol will never order, e.g. too large) depends on nothing: it says
 *    only that, and the same limits hold on every replica.
 *
 * The simulator checks the rule from outside (src/sim/checkers.ts: no correct replica sends a signed
 * message that is not on its simulated disk, or a reply whose COMMIT is not) and crashes replicas
 * between compute and write, during the write, and after the write before the sends; the negative
 * control `--negative reply-before-write` breaks rule 2 and must be caught.
 */

/** Numbers the Readys of one incarnation and computes the `after` of each outbound effect. */
export class DurabilityTracker {
  /** The number the next flush() gives its Ready (the Ready being accumulated now). */
  turn = 1;
  /** Replies depend on this Ready (rule 2): the running maximum over executed sequence numbers. */
  private replyAfter = 0;

  constructor(private readonly unsafeReplyBeforeWrite = false) {}

  /** Rule 1 (and 3): what a message to a replica signed or assembled in this turn waits for. */
  get messageAfter(): number {
    return this.turn;
  }

  /** Called when a sequence number executes; `ownCommitTurn` is the Ready that wrote our own COMMIT for it, if any. */
  executed(ownCommitTurn: number | undefined): void {
    if (ownCommitTurn !== undefined && ownCommitTurn > this.replyAfter) this.replyAfter = ownCommitTurn;
  }

  /** Rule 2: what a reply to a request executed so far waits for. */
  get replyDependency(): number {
    return this.unsafeReplyBeforeWrite ? 0 : this.replyAfter;
  }

  /** Rule 4. */
  readonly refusalAfter = 0;

  /** Ends the current Ready; returns its number. */
  next(): number {
    return this.turn++;
  }
}
