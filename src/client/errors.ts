/**
 * Errors of the client SDK. Each has a `code`, so callers can switch on it without instanceof.
 * No node-only imports (this module is part of the SDK's browser-safe import graph).
 */
import type { KvErrorCode } from '../app/kv-ops.ts';
import type { AnyReply } from '../core/messages.ts';

export type PbftClientErrorCode =
  | 'QUORUM_FAILURE'
  | 'TIMEOUT_OUTCOME_UNKNOWN'
  | 'CLIENT_CLOSED'
  | 'CONNECT_FAILED'
  | 'BAD_CONFIG'
  | 'UNEXPECTED_RESULT'
  | 'REQUEST_TOO_LARGE'
  | KvErrorCode;

export class PbftClientError extends Error {
  constructor(
    readonly code: PbftClientErrorCode,
    message: string,
  ) {
    super(message.replace(/\s*[\r\n]+\s*/g, ' '));
    this.name = 'PbftClientError';
  }
}

function describeReplies(replies: readonly AnyReply[]): string {
  const distinct = new Set(replies.map((r) => Array.from(r.msg.result, (b) => b.toString(16).padStart(2, '0')).join('')));
  const from = replies.map((r) => r.msg.replica).sort((a, b) => a - b);
  return `${replies.length} ${replies.length === 1 ? 'reply' : 'replies'} (from replicas ${from.join(', ') || 'none'}) with ${distinct.size} different ${distinct.size === 1 ? 'result' : 'results'}`;
}

/**
 * The FAIL: the replicas answered so that no result can still be confirmed by f+1 of them.
 * Up to f replicas may lie, so this means more than f are faulty (or the cluster is misconfigured).
 */
export class QuorumFailure extends PbftClientError {
  override readonly code = 'QUORUM_FAILURE' as const;
  constructor(
    /** Every valid signed reply received for the request (the evidence). */
    readonly replies: AnyReply[],
    readonly timestamp: number,
    readonly quorum: number,
  ) {
    super('QUORUM_FAILURE', `quorum failure: no result can reach ${quorum} matching replies; got ${describeReplies(replies)}`);
    this.name = 'QuorumFailure';
  }
}

/**
 * The deadline passed before f+1 replicas sent matching replies. The outcome is unknown: the request
 * may have been ordered and may take effect (now or later) even though no result reached the client;
 * the code says so. Retrying a non-idempotent operation (a put over a value someone else may have
 * written since, a cas, a del) can apply it twice: read the state first, or retry only what is
 * idempotent.
 */
export class TimeoutError extends PbftClientError {
  override readonly code = 'TIMEOUT_OUTCOME_UNKNOWN' as const;
  constructor(
    readonly timeoutMs: number,
    /** Valid signed replies received before the deadline (fewer than f+1 matching). */
    readonly replies: AnyReply[],
    readonly timestamp: number,
  ) {
    super(
      'TIMEOUT_OUTCOME_UNKNOWN',
      `timed out after ${timeoutMs} ms without matching replies from f+1 replicas; the operation may still take effect ` +
        `(it may have been ordered, and executes even though no result arrived): check the state before retrying it; got ${describeReplies(replies)}`,
    );
    this.name = 'TimeoutError';
  }
}

/** The client was closed before the request completed (or the request was made after close()). */
export class ClientClosedError extends PbftClientError {
  override readonly code = 'CLIENT_CLOSED' as const;
  constructor() {
    super('CLIENT_CLOSED', 'the client is closed');
    this.name = 'ClientClosedError';
  }
}

/** connect() could not reach f+1 replicas in time. */
export class ConnectError extends PbftClientError {
  override readonly code = 'CONNECT_FAILED' as const;
  constructor(message: string) {
    super('CONNECT_FAILED', message);
    this.name = 'ConnectError';
  }
}

/**
 * The cluster description or the key given to connect() (or to clusterFromJson / clientKeyFromJson)
 * cannot be used. `reason` says more when the keyring validation found it: 'MALFORMED' (shape or
 * value of a field) or 'KEY_MISMATCH' (the key is not the one the keyring lists for it).
 */
export class ClientConfigError extends PbftClientError {
  override readonly code = 'BAD_CONFIG' as const;
  constructor(
    message: string,
    readonly reason?: string,
  ) {
    super('BAD_CONFIG', message);
    this.name = 'ClientConfigError';
  }
}

/** The key-value store answered the operation with an error result (agreed by f+1 replicas). */
export class KvError extends PbftClientError {
  declare readonly code: KvErrorCode;
  constructor(code: KvErrorCode, message: string) {
    super(code, message);
    this.name = 'KvError';
  }
}

/** f+1 replicas agreed on a result that is not a valid result of the operation sent. */
export class UnexpectedResultError extends PbftClientError {
  override readonly code = 'UNEXPECTED_RESULT' as const;
  constructor(
    message: string,
    readonly result: Uint8Array,
  ) {
    super('UNEXPECTED_RESULT', message);
    this.name = 'UnexpectedResultError';
  }
}

/**
 * The operation is larger than the protocol orders (OP_BYTES_MAX, src/core/limits.ts): refused by
 * the SDK before signing, or by f+1 replicas (signed REFUSALs) when the request reached them. It was
 * not executed and will not be.
 */
export class RequestTooLargeError extends PbftClientError {
  override readonly code = 'REQUEST_TOO_LARGE' as const;
  constructor(
    readonly bytes: number,
    readonly limit: number,
    /** Replicas that refused the request (empty when the SDK refused it before sending). */
    readonly refusedBy: number[] = [],
  ) {
    super(
      'REQUEST_TOO_LARGE',
      `operation of ${bytes} bytes exceeds the limit of ${limit} bytes${refusedBy.length > 0 ? ` (refused by replicas ${refusedBy.join(', ')})` : ''}; it was not executed`,
    );
    this.name = 'RequestTooLargeError';
  }
}
