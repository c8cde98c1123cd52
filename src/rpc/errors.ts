import { Code, ConnectError } from "@connectrpc/connect";
import {
  InvalidRequestError,
  MembershipPendingError,
  MembershipRefusedError,
  NotLeaderError,
  OverloadedError,
  ReadFailedError,
  StoppedError,
  TooLargeError,
  UnknownOutcomeError,
} from "../driver/errors.js";
import { isKvError, type KvError } from "../kv/index.js";
import { unreachable } from "../lib/assert.js";

import { leaderHeader, leaderIdHeader, reasonHeader, type ErrorReason } from "./wire-contract.js";

/** What the request was when it failed; it decides whether a timeout means "maybe applied". */
export interface ErrorContext {
  /** The request's signal: aborted by its deadline or by the client going away. */
  readonly signal?: AbortSignal;
  /** True for Put, Delete and Txn: their outcome is unknown when they time out after proposing. */
  readonly mutation?: boolean;
}

/**
 * THE mapping from domain errors to the wire (docs/design.md, "Error model"). Every handler of
 * KvService and ClusterService throws through here, so that one place decides the code, the message a
 * person reads, and the hints a client acts on. The original error stays in `cause` for server logs;
 * messages never carry internals (file names, stack traces, queue sizes).
 *
 * Codes:
 * - not the leader (nothing proposed) -> Unavailable + `raftkv-leader`: retry at that URL. Unavailable
 *   rather than FailedPrecondition because the condition is transient and the request safe to resend,
 *   which is what gRPC retry policies and load balancers assume of Unavailable.
 * - outcome unknown -> Unavailable (or DeadlineExceeded when the deadline caused it): retry with the
 *   same client_id and sequence.
 * - bad input -> InvalidArgument; a size or count limit -> ResourceExhausted; overload ->
 *   ResourceExhausted; a stale sequence -> FailedPrecondition (a newer request of the client won).
 */
export function toConnectError(error: unknown, context: ErrorContext = {}): ConnectError {
  if (error instanceof ConnectError) return error;
  const aborted = abortCode(context.signal);
  if (error instanceof NotLeaderError) {
    if (error.leaderId === 0 || error.leaderClientUrl === "") {
      return wire(error, Code.Unavailable, "no-leader", "no leader is known right now (an election is in progress); retry shortly");
    }
    return wire(
      error,
      Code.Unavailable,
      "not-leader",
      `this node is not the leader; send the request to the leader at ${error.leaderClientUrl}`,
      {
        [leaderHeader]: error.leaderClientUrl,
        [leaderIdHeader]: String(error.leaderId),
      },
    );
  }
  if (error instanceof UnknownOutcomeError) {
    if (aborted !== undefined) return abortedError(error, aborted, true);
    return wire(
      error,
      Code.Unavailable,
      "unknown-outcome",
      `the write was proposed but its outcome is unknown (leadership changed); ${maybeApplied}`,
    );
  }
  if (error instanceof ReadFailedError) {
    if (aborted !== undefined) return abortedError(error, aborted, false);
    return wire(
      error,
      Code.Unavailable,
      "read-failed",
      "the leader could not confirm a linearizable read in time; retry, or read with serializable set",
    );
  }
  if (error instanceof OverloadedError) {
    return wire(error, Code.ResourceExhausted, "overloaded", "the node has too much work queued; back off and retry");
  }
  if (error instanceof StoppedError) {
    return wire(error, Code.Unavailable, "stopped", "this node is not serving (shutting down or its storage failed); use another node");
  }
  if (error instanceof TooLargeError) {
    return wire(
      error,
      Code.ResourceExhausted,
      "too-large",
      "the request is larger than the largest log entry the cluster replicates; split it",
    );
  }
  if (error instanceof InvalidRequestError) return wire(error, Code.InvalidArgument, "invalid-argument", error.message);
  if (error instanceof MembershipRefusedError) return wire(error, Code.FailedPrecondition, "membership-refused", error.message);
  if (error instanceof MembershipPendingError) {
    return wire(error, Code.Unavailable, "membership-pending", `${error.message}; retry shortly (one membership change at a time)`);
  }
  if (isKvError(error)) return fromKvError(error);
  if (aborted !== undefined) return abortedError(error, aborted, context.mutation === true);
  return wire(error, Code.Internal, "internal", "internal error; the server log has the details");
}

const maybeApplied = "it may still take effect: retry with the same client_id and sequence";

function abortedError(cause: unknown, code: Code.DeadlineExceeded | Code.Canceled, mutation: boolean): ConnectError {
  if (code === Code.Canceled) {
    return wire(
      cause,
      Code.Canceled,
      "canceled",
      `the request was canceled by the client${mutation ? "; the write may still take effect" : ""}`,
    );
  }
  return mutation
    ? wire(cause, Code.DeadlineExceeded, "unknown-outcome", `deadline exceeded before the write applied; ${maybeApplied}`)
    : wire(cause, Code.DeadlineExceeded, "deadline", "deadline exceeded before the read could be answered");
}

function fromKvError(error: KvError): ConnectError {
  const detail = error.detail;
  switch (detail.kind) {
    case "invalidArgument":
      return wire(error, Code.InvalidArgument, "invalid-argument", error.message);
    case "duplicateKeyInTxn":
      return wire(error, Code.InvalidArgument, "duplicate-key", error.message);
    case "limitExceeded":
      return wire(error, Code.ResourceExhausted, "limit-exceeded", error.message);
    case "tooManyWatchers":
      return wire(error, Code.ResourceExhausted, "too-many-watchers", error.message);
    case "staleSequence":
      return wire(error, Code.FailedPrecondition, "stale-sequence", error.message);
    case "sequenceReused":
      return wire(error, Code.FailedPrecondition, "stale-sequence", error.message);
    case "resultNotRetained":
      return wire(error, Code.AlreadyExists, "result-not-retained", error.message);
    // Both mean a bug or version skew between nodes, never a client's mistake.
    case "malformedCommand":
    case "invalidSnapshot":
      return wire(error, Code.Internal, "internal", "internal error; the server log has the details");
    default:
      return unreachable(detail, "kv error");
  }
}

/** The code the request's own signal calls for, when it was aborted: its deadline, or the client leaving. */
function abortCode(signal: AbortSignal | undefined): Code.DeadlineExceeded | Code.Canceled | undefined {
  if (signal?.aborted !== true) return undefined;
  const reason: unknown = signal.reason;
  if (reason instanceof ConnectError) return reason.code === Code.DeadlineExceeded ? Code.DeadlineExceeded : Code.Canceled;
  // AbortSignal.timeout() (our own server-side deadline) aborts with a TimeoutError.
  if (reason instanceof Error && reason.name === "TimeoutError") return Code.DeadlineExceeded;
  return Code.Canceled;
}

function wire(cause: unknown, code: Code, reason: ErrorReason, message: string, metadata: Record<string, string> = {}): ConnectError {
  return new ConnectError(message, code, { [reasonHeader]: reason, ...metadata }, undefined, cause);
}

/** Builds the error for bad input found by the rpc layer itself (for example an unknown member id). */
export function invalidArgument(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument, { [reasonHeader]: "invalid-argument" });
}
