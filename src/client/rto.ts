/**
 * When a client retransmits: the first retransmission waits `retransmitMs`, or longer once the
 * requests this client saw accepted took longer (Jacobson and Karels' estimator, as TCP's RTO,
 * RFC 6298: smoothed latency + 4 x its mean deviation), at most `capMs`.
 *
 * Why: a retransmission goes to every replica (each verifies the request again, and answers again
 * with its reply when it has one), so a client whose timer is shorter than the cluster's latency
 * under load multiplies the load it is waiting on; with 64 closed-loop clients behind a 300 ms timer
 * and latencies of 400 ms, every request was sent five times. Samples come only from requests
 * accepted on their first transmission (Karn's rule): a request that was retransmitted says nothing
 * about how long one transmission takes. Without samples (every request retransmitted: the latency
 * is steadily above the timer) the wait doubles after each request that needed a retransmission and
 * stays doubled until a request is accepted on its first transmission (RFC 6298 5.5-5.7): otherwise
 * a timer below the latency would never see a sample and never grow. Pure: the caller passes the
 * measured times.
 */
export class RetransmitEstimator {
  private srttMs: number | undefined;
  private rttvarMs = 0;
  /** Doublings kept from requests that needed a retransmission, since the last sample. */
  private backoff = 0;

  constructor(
    /** The shortest wait, and the wait before any sample. */
    readonly floorMs: number,
    /** The longest first wait, whatever the samples. */
    readonly capMs: number,
  ) {}

  /** A request accepted without a retransmission, `ms` after it was sent. */
  sample(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    this.backoff = 0;
    if (this.srttMs === undefined) {
      this.srttMs = ms;
      this.rttvarMs = ms / 2;
      return;
    }
    this.rttvarMs = 0.75 * this.rttvarMs + 0.25 * Math.abs(this.srttMs - ms);
    this.srttMs = 0.875 * this.srttMs + 0.125 * ms;
  }

  /** A request was accepted after it had been retransmitted: no sample, and the next one waits twice as long. */
  retransmitted(): void {
    if (this.timeoutMs < this.capMs) this.backoff++;
  }

  /** How long to wait before the first retransmission of the next request. */
  get timeoutMs(): number {
    const estimate = this.srttMs === undefined ? this.floorMs : Math.max(this.floorMs, Math.ceil(this.srttMs + 4 * this.rttvarMs));
    return Math.min(this.capMs, estimate * 2 ** this.backoff);
  }
}
