import type { NodeId } from "../core/index.js";

/** This node is not the leader; nothing was proposed. `leaderClientUrl` is empty when no leader is known. */
export class NotLeaderError extends Error {
  override readonly name = "NotLeaderError";
  constructor(
    readonly leaderId: NodeId,
    readonly leaderClientUrl: string,
  ) {
    super(leaderId === 0 ? "no leader is known; retry shortly" : `not the leader; the leader is node ${leaderId} at ${leaderClientUrl}`);
  }
}

/** The proposal may or may not take effect (leadership lost, deadline, crash); retry with the same client id and sequence. */
export class UnknownOutcomeError extends Error {
  override readonly name = "UnknownOutcomeError";
}

/** Too much work queued (uncommitted bytes, pending proposals or reads); back off and retry. */
export class OverloadedError extends Error {
  override readonly name = "OverloadedError";
}

/** A linearizable read could not confirm leadership in time; retry. */
export class ReadFailedError extends Error {
  override readonly name = "ReadFailedError";
}

/** The node is shutting down or has stopped because its storage failed. */
export class StoppedError extends Error {
  override readonly name = "StoppedError";
}

/** The encoded command exceeds the largest entry the log replicates (the peer message size limit). */
export class TooLargeError extends Error {
  override readonly name = "TooLargeError";
}

/** The request names something that cannot work (e.g. a leadership transfer to a node that is not a voter). */
export class InvalidRequestError extends Error {
  override readonly name = "InvalidRequestError";
}

/**
 * A membership change that cannot be made: the member set does not allow it (adding a member twice,
 * removing the last voter, reusing an id), or a learner lags too far to be promoted. Nothing was proposed.
 */
export class MembershipRefusedError extends Error {
  override readonly name = "MembershipRefusedError";
}

/**
 * A membership change that must wait: an earlier one is not committed yet, or a new leader has not yet
 * committed an entry of its term. Nothing was proposed; retry shortly.
 */
export class MembershipPendingError extends Error {
  override readonly name = "MembershipPendingError";
}
