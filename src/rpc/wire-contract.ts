import type { ConnectError } from "@connectrpc/connect";

/**
 * What the server promises a client on the wire, in one module both sides import: the server's error
 * mapping (errors.ts) writes these names and reasons, the bundled client (client/) acts on them. A new
 * reason fails to compile until `reasonContract` says what a client may conclude from it.
 *
 * Response metadata keys: Connect sends them as headers, gRPC as trailers.
 */
export const leaderHeader = "raftkv-leader";
export const leaderIdHeader = "raftkv-leader-id";
/** A stable, machine-readable name of what went wrong (see ErrorReason); the message is for people. */
export const reasonHeader = "raftkv-error";

export type ErrorReason =
  | "not-leader"
  | "no-leader"
  | "unknown-outcome"
  | "read-failed"
  | "overloaded"
  | "stopped"
  | "too-large"
  | "invalid-argument"
  | "limit-exceeded"
  | "duplicate-key"
  | "stale-sequence"
  | "result-not-retained"
  | "too-many-watchers"
  | "quota-exceeded"
  | "membership-refused"
  | "membership-pending"
  | "deadline"
  | "canceled"
  | "unimplemented"
  | "internal";

/** What a client may conclude from a reason and what it does next (docs/api.md, the error table). */
export interface ReasonContract {
  /** The server proved that nothing was proposed: a write with this answer did not and will not apply. */
  readonly notApplied: boolean;
  /**
   * `redirect`: resend to the node named by `raftkv-leader`; `next-endpoint`: this node cannot serve, try
   * another; `backoff`: transient, retry after a pause; `fatal`: the request itself is wrong, or its
   * outcome is settled: retrying cannot help.
   */
  readonly action: "redirect" | "next-endpoint" | "backoff" | "fatal";
}

export const reasonContract: Readonly<Record<ErrorReason, ReasonContract>> = {
  "not-leader": { notApplied: true, action: "redirect" },
  // A node that knows no leader may be the one cut off from the others (etcd's clients move on too):
  // staying on it would wait out the partition, not the election.
  "no-leader": { notApplied: true, action: "next-endpoint" },
  "unknown-outcome": { notApplied: false, action: "backoff" },
  "read-failed": { notApplied: true, action: "backoff" },
  "overloaded": { notApplied: true, action: "backoff" },
  // Shutting down or failed storage: a write it had proposed may still commit through the others.
  "stopped": { notApplied: false, action: "next-endpoint" },
  "too-large": { notApplied: true, action: "fatal" },
  "invalid-argument": { notApplied: true, action: "fatal" },
  "limit-exceeded": { notApplied: true, action: "fatal" },
  "duplicate-key": { notApplied: true, action: "fatal" },
  "stale-sequence": { notApplied: true, action: "fatal" },
  // The write with that sequence applied earlier; only its result is gone.
  "result-not-retained": { notApplied: false, action: "fatal" },
  "too-many-watchers": { notApplied: true, action: "fatal" },
  // The store is at its space quota: deletes (or a larger --quota-bytes) must come first.
  "quota-exceeded": { notApplied: true, action: "fatal" },
  // The member set does not allow the change (or a learner lags): nothing was proposed.
  "membership-refused": { notApplied: true, action: "fatal" },
  // An earlier change is not committed yet (or a new leader has not committed in its term).
  "membership-pending": { notApplied: true, action: "backoff" },
  "deadline": { notApplied: false, action: "fatal" },
  "canceled": { notApplied: false, action: "fatal" },
  "unimplemented": { notApplied: true, action: "fatal" },
  "internal": { notApplied: false, action: "fatal" },
};

/**
 * The reason a server attached to an error, or undefined for errors from elsewhere (the network, a
 * proxy) and for reasons this build does not know (a newer server's): no conclusion is drawn from them.
 */
export function errorReason(error: ConnectError): ErrorReason | undefined {
  const value = error.metadata.get(reasonHeader);
  return value !== null && Object.hasOwn(reasonContract, value) ? (value as ErrorReason) : undefined;
}
