/**
 * How a client follows the membership (src/core/membership.ts) on its own: shared by the SDK
 * (pbft-client.ts) and the simulator's client (src/sim/client.ts). Pure: no I/O, no clock (the
 * caller passes `now`, milliseconds in the SDK, ticks in the simulator).
 *
 * What the client trusts, and why:
 *   - Epoch 0 is the keyring (cluster.json), the one thing it is handed.
 *   - Configuration e+1 is believed only with an epoch proof checked against configuration e
 *     (verifyEpochProof): the checkpoint where e+1 began, certified by a quorum of e's replicas
 *     (2f+1 of 3f+1), whose state digest opens to the new membership. Whoever sends the proof is
 *     irrelevant: any replica, correct or not, may answer; a wrong answer cannot be made to verify
 *     unless more than f of e's replicas signed it. So a faulty replica can withhold proofs (the
 *     client asks every connected replica) or send bad ones (refused, counted, reported), never
 *     move the client to a configuration of its choosing.
 *   - This assumes, like the protocol itself, that each configuration the client steps through kept
 *     at most f faulty members while it was in force and until the client learned its successor:
 *     a removed replica's key should be destroyed, or a quorum of an old configuration could later
 *     sign a different successor for a client that still believes in it.
 *
 * When to ask (`epochsreq` with the client's epoch, answered by `epochs`): at connect, when a
 * request is retransmitted (its replies may be missing because the members changed), when a reply
 * or frame comes from a replica id the client does not know (a joined replica), and when the last
 * ask is older than `refreshMs`; never more often than once per `minIntervalMs` unless the previous
 * answer advanced the client and was full (at most 16 proofs per answer: more may follow). A keyring
 * without an operator key can never change (membership.ts): then the client never asks.
 */
import { encodeLinkFrame } from '../codec/messages.ts';
import type { ClusterConfig, FaultModel } from '../core/cluster.ts';
import { followEpochProofs, type ProofCrypto } from '../core/epochproof.ts';
import { faultsFor, genesisMembership, mayHoldClient, modelOf, OPERATOR_CLIENT, type MemberConfig } from '../core/membership.ts';
import type { EpochProof } from '../core/messages.ts';

/** A replica answers with at most this many proofs (src/core/replica.ts, serveEpochs). */
export const EPOCH_PROOFS_PER_ANSWER_MAX = 16;

export interface FollowOutcome {
  /** The configuration the client holds after the answer (the newer one when it advanced). */
  config: MemberConfig;
  /** The configuration before, when the answer advanced the client. */
  previous?: MemberConfig;
  /** Why a proof of the answer was refused (the chain was followed up to it). */
  invalid?: string;
  /** The answer advanced the client and was full: ask again at once for the rest. */
  more: boolean;
}

export class MembershipFollower {
  private current: MemberConfig;
  /** The last ask made through shouldAsk (throttles urgent asks). */
  private lastAskAt = Number.NEGATIVE_INFINITY;
  /** The last ask of any kind (the refresh counts from it). */
  private lastAnyAskAt = Number.NEGATIVE_INFINITY;
  private askAgain = false;
  /** Answers that carried a proof that did not verify. */
  invalidAnswers = 0;
  /** The proofs that took the client from the keyring's configuration to the one in force, by epoch. */
  private readonly chain = new Map<number, EpochProof>();

  constructor(
    readonly clusterId: string,
    genesis: MemberConfig,
    private readonly crypto: ProofCrypto,
    /** At most one ask per this interval (ms in the SDK, ticks in the simulator). */
    readonly minIntervalMs: number,
    /** Ask again when the last ask is older than this, even with no sign of a change. */
    readonly refreshMs: number = Number.POSITIVE_INFINITY,
  ) {
    this.current = genesis;
  }

  /** A follower starting from the keyring's configuration (epoch 0). */
  static fromKeyring(cluster: ClusterConfig, crypto: ProofCrypto, minIntervalMs: number, refreshMs?: number): MembershipFollower {
    return new MembershipFollower(cluster.clusterId, genesisMembership(cluster).current, crypto, minIntervalMs, refreshMs);
  }

  /** False when the configuration has no operator key: no reconfiguration can ever be ordered. */
  get canChange(): boolean {
    return this.current.operator !== undefined;
  }

  /** Epoch proofs of epochs 1.. up to the one in force (what a third party needs for later keys). */
  get proofs(): ReadonlyMap<number, EpochProof> {
    return this.chain;
  }

  /** The configuration in force, as far as the client knows. */
  get config(): MemberConfig {
    return this.current;
  }

  get epoch(): number {
    return this.current.epoch;
  }

  /** Member ids, ascending. */
  get members(): number[] {
    return this.current.replicas.map((r) => r.id);
  }

  get n(): number {
    return this.current.replicas.length;
  }

  /** floor((n-1)/3) (crash mode: floor((n-1)/2)): a result needs f+1 matching replies of members. */
  get f(): number {
    return faultsFor(this.current.replicas.length, modelOf(this.current));
  }

  /** The cluster's fault model (cluster.json; every epoch keeps it). */
  get model(): FaultModel {
    return modelOf(this.current);
  }

  isMember(replica: number): boolean {
    return this.current.replicas.some((r) => r.id === replica);
  }

  /** Whether this client is registered in the configuration in force (it may have been removed). */
  hasClient(client: number): boolean {
    // The operator signs as the reserved OPERATOR_CLIENT with the configuration's operator key.
    if (client === OPERATOR_CLIENT) return this.current.operator !== undefined;
    return mayHoldClient(this.current, client);
  }

  /** The primary of `view`: the member at view mod n in ascending id order (src/core/newview.ts). */
  primaryOf(view: number): number {
    const ids = this.current.replicas;
    return ids[view % ids.length]!.id;
  }

  /**
   * True when the client should send `epochsreq` now: `urgent` (connect, a retransmission, an
   * unknown replica) at most once per minIntervalMs; otherwise once refreshMs has passed. Records
   * the ask when it says yes.
   */
  shouldAsk(now: number, urgent: boolean): boolean {
    if (!this.canChange) return false;
    const due = this.askAgain || (urgent ? now - this.lastAskAt >= this.minIntervalMs : now - this.lastAnyAskAt >= this.refreshMs);
    if (!due) return false;
    this.lastAskAt = now;
    this.lastAnyAskAt = now;
    this.askAgain = false;
    return true;
  }

  /**
   * An ask made outside shouldAsk (to a replica whose connection just opened): it postpones the
   * refresh, not the urgent asks (a connection opening says nothing about a retransmission's cause).
   */
  noteAsked(now: number): void {
    this.lastAnyAskAt = now;
  }

  /** The link frame asking for the proofs after the client's epoch. */
  request(): Uint8Array {
    return encodeLinkFrame({ type: 'epochsreq', epoch: this.current.epoch });
  }

  /**
   * An `epochs` answer: every proof is verified against the configuration before it, starting from
   * the client's (followEpochProofs); proofs of epochs the client knows already are ignored (stale,
   * e.g. an answer to an older ask). The client moves to the newest configuration reached; a proof
   * that does not verify stops the chain there and is reported in `invalid`.
   */
  offer(proofs: readonly EpochProof[]): FollowOutcome {
    const previous = this.current;
    const r = followEpochProofs(this.clusterId, previous, proofs, this.crypto);
    if (r.reason !== undefined) this.invalidAnswers++;
    const advanced = r.config.epoch > previous.epoch;
    if (advanced) {
      this.current = r.config;
      // (Those followEpochProofs went through: the first proof of each epoch it reached.)
      for (const p of [...proofs].sort((a, b) => a.epoch - b.epoch)) {
        if (p.epoch > previous.epoch && p.epoch <= r.config.epoch && !this.chain.has(p.epoch)) this.chain.set(p.epoch, p);
      }
    }
    const more = advanced && proofs.length >= EPOCH_PROOFS_PER_ANSWER_MAX && r.reason === undefined;
    if (more) this.askAgain = true;
    return {
      config: this.current,
      ...(advanced ? { previous } : {}),
      ...(r.reason !== undefined ? { invalid: r.reason } : {}),
      more,
    };
  }
}
