/**
 * What `raftkv` exits with. Scripts may rely on these numbers; docs/operations.md lists them.
 */
export const exitCodes = {
  /** Done as asked. */
  ok: 0,
  /** The request was refused or failed and was not applied (bad input, a limit, a stale sequence, a server error). */
  failed: 1,
  /** The command line is wrong (unknown flag, missing argument, bad value); nothing was sent. */
  usage: 2,
  /** The answer is "no": `get` found no key, or a `txn`'s conditions did not hold (its else branch ran). */
  negative: 3,
  /** No endpoint could serve the request in time (unreachable, no leader, overloaded); it was not applied. */
  unavailable: 4,
  /** A write may or may not have been applied: its outcome never became known before the deadline. */
  unknownOutcome: 5,
  /**
   * `serve` refused to start: the member's data directory is empty but its cluster already exists, so
   * the member lost its data (docs/operations.md, a member lost its data directory).
   */
  dataLost: 6,
  /**
   * `serve` stopped because the node was removed from the cluster (`raftkv member remove`). Started
   * again on the same data it stops again; to bring it back, empty its data directory and start it
   * with `--join`.
   */
  removed: 7,
} as const;

export type ExitCode = (typeof exitCodes)[keyof typeof exitCodes];
