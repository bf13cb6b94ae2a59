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
 * 1. A message to a replica (COMMIT, CHECKPOINT, VIEW-CHANGE, NEW-VIEW, retransmissions, and the
 *    link messages that serve log entries, batches and state) waits for the writes of its own Ready:
 *    everything the replica signed or learned up to that turn, its own statement included. A replica
 *    that crashes and restarts therefore never contradicts such a statement.
 *
 * 1a. A PRE-PREPARE or PREPARE waits only for the horizon (horizon.ts) that covers it: the Ready in
 *    which the replica's view, its entry into that view (the NEW-VIEW it sent or took), or its
 *    stable checkpoint last moved, once that Ready's writes and the horizon record written with them
 *    are durable (voteAfter). Its own writes may be deferred
 *    (pipeline.ts) and lost in a crash. What stands in for them: a replica that restarts ABSTAINS
 *    (recovery.ts, `abstain`): it signs no PRE-PREPARE, PREPARE or COMMIT in a view up to the
 *    recorded horizon view for a sequence number up to the recorded stable checkpoint + L. Every
 *    PRE-PREPARE or PREPARE that left an earlier incarnation lies in that range (it left only once
 *    the horizon covering its view and window was durable, and the record never goes back), so the
 *    restarted replica cannot sign a second, different one for the same (view, seq); it keeps
 *    receiving, executing on the others' commit certificates, checkpointing, fetching, transferring
 *    state and changing views (VIEW-CHANGE and NEW-VIEW keep rule 1), and votes again in a later
 *    view or above the range. A NEW-VIEW it signs there (rule 1) is safe: a PRE-PREPARE of a primary
 *    leaves only once its NEW-VIEW for the view is durable, so a restarted primary still changing to
 *    the view sent neither. Why it is enough:
 *    - prepared certificates: two for different digests at one (view, seq) need a correct replica to
 *      send two different PRE-PREPAREs or PREPAREs there; an amnesiac one abstains there instead;
 *    - committed requests survive view changes: unchanged, a COMMIT still leaves only with its
 *      Ready's write, which holds the prepared certificate (rule 2's argument below);
 *    - the record needs no write of its own: it is the horizon at each start, which never goes
 *      back, and the abstaining replica adds no vote to the range; a second restart abstains over
 *      a range that contains the first one's;
 *    - liveness: a restarted primary proposes nothing in its view, the backups' request timers run
 *      out and the view changes (a whole-cluster restart after a crash costs one view change); a restarted backup
 *      counts as silent in the range: the others order without it, or the view changes.
 *    The crash-fault mode (quorum.ts, majority quorums) rests on the same two facts.
 *    A clean stop (horizon.ts, `clean`) writes every turn, deferred writes included, then a token
 *    and the record naming it: the next start, finding both, holds every vote it sent and does not
 *    abstain; its first turn rewrites the record without the token before any effect leaves
 *    (mustPrecede). A replica that is abstaining records no clean stop.
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
 * On the 1-client path a replica therefore waits for one synced write per request (the turn that
 * prepares it, before its COMMIT leaves), not three in a row.
 *
 * The simulator checks the rule from outside (src/sim/checkers.ts: no correct replica sends a
 * COMMIT, CHECKPOINT, VIEW-CHANGE or NEW-VIEW that is not on its simulated disk, a PRE-PREPARE or
 * PREPARE that its durable horizon does not cover, a vote in the range it abstains over after a
 * restart, or a reply whose COMMIT is not on disk) and crashes replicas between compute and write,
 * during the write, and after the write before the sends; the simulated disk loses deferred writes.
 * The negative controls `--negative reply-before-write` (rule 2), `--negative no-abstain` (rule
 * 1a without abstaining) and `--negative clean-before-drain` (a clean stop recorded before its
 * writes) must be caught.
 */

/** Numbers the Readys of one incarnation and computes the `after` of each outbound effect. */
export class DurabilityTracker {
  /** The number the next flush() gives its Ready (the Ready being accumulated now). */
  turn = 1;
  /** Replies depend on this Ready (rule 2): the running maximum over executed sequence numbers. */
  private replyAfter = 0;
  /**
   * Rule 1a: the position in the views (2 x view, + 1 once the view is entered: its NEW-VIEW taken or
   * sent) and the stable checkpoint of the latest Ready that moved either, and that Ready.
   */
  private horizonAt = -1;
  private horizonStable = -1;
  private horizonTurn = 0;

  constructor(private readonly unsafeReplyBeforeWrite = false) {}

  /** Rule 1 (and 3): what a message to a replica signed or assembled in this turn waits for. */
  get messageAfter(): number {
    return this.turn;
  }

  /**
   * Rule 1a: what a PRE-PREPARE or PREPARE signed now waits for, given the replica's current view,
   * whether it is still changing to it, and its stable checkpoint: this turn when one of them moved
   * past the last Ready's, else the Ready that last moved them. That Ready wrote the horizon record
   * (view, stable checkpoint) and the view's entry: a PRE-PREPARE of a new primary never overtakes
   * its NEW-VIEW (a restarted primary that finds no NEW-VIEW of its own for the view sent none, and
   * no PRE-PREPARE there either, so the one it then signs contradicts nothing).
   */
  voteAfter(view: number, viewChanging: boolean, stable: number): number {
    const at = 2 * view + (viewChanging ? 0 : 1);
    return at > this.horizonAt || stable > this.horizonStable ? this.turn : this.horizonTurn;
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

  /** Ends the current Ready, after which the replica is in `view` (entered or changing to it) at `stable`; returns its number. */
  next(view: number, viewChanging: boolean, stable: number): number {
    const at = 2 * view + (viewChanging ? 0 : 1);
    if (at > this.horizonAt || stable > this.horizonStable) {
      this.horizonAt = Math.max(at, this.horizonAt);
      this.horizonStable = Math.max(stable, this.horizonStable);
      this.horizonTurn = this.turn;
    }
    return this.turn++;
  }
}
