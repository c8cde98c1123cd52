import type { ChaosOp } from "./history.js";

/**
 * What a checker found wrong with raftkv. Each kind is one property of the issue:
 * - `linearizability`: no linearization of a key's history exists (stale read, lost or resurrected
 *   write, CAS that saw the wrong value);
 * - `lost-write`: an acknowledged write is missing from the final state after healing;
 * - `double-apply`: one write (unique value) took effect at two revisions: exactly-once broken;
 * - `failed-write-applied`: a write the client was told certainly did not happen took effect;
 * - `phantom-value`: a value nobody wrote was read or appeared in the history;
 * - `unapplied-ack`: an acknowledged write never appears in the complete watch history;
 * - `ack-mismatch`: the revision an acknowledgement names holds another change;
 * - `replica-divergence`: two nodes report different histories for the same revisions;
 * - `watch`: a watch skipped revisions, or delivered changes that differ from the replayed history;
 * - `two-leaders`: two nodes reported leading the same term (Election Safety);
 * - `no-recovery`: no leader or no successful write within the bound after the last fault healed, or a
 *   node that never rejoins (never again agrees with the others on the leader);
 * - `crash`: a node exited on its own;
 * - `disk-loss`: a node restarted on an empty data directory (the disk-loss nemesis) did not refuse to
 *   start with exit code 6 although its cluster exists: it joined, exited otherwise, or never decided;
 * - `membership`: after healing, the member list differs from what the membership nemesis did: a
 *   removed member still running (it must stop with exit code 7), a learner never promoted, a node that
 *   joined and is not listed, a member no node holds.
 */
export type ViolationKind =
  | "linearizability"
  | "lost-write"
  | "double-apply"
  | "failed-write-applied"
  | "phantom-value"
  | "unapplied-ack"
  | "ack-mismatch"
  | "replica-divergence"
  | "watch"
  | "two-leaders"
  | "no-recovery"
  | "crash"
  | "disk-loss"
  | "membership";

export interface Violation {
  readonly kind: ViolationKind;
  /** For a person: what happened, with op ids, keys, values and times. */
  readonly message: string;
  /** The ops that show it (a history excerpt), when there are any. */
  readonly ops: readonly ChaosOp[];
}

/** Most violations of one kind a report lists; the count is always complete. */
export const violationsPerKindMax = 20;

export function capViolations(violations: readonly Violation[]): Violation[] {
  const perKind = new Map<ViolationKind, number>();
  const kept: Violation[] = [];
  for (const v of violations) {
    const n = (perKind.get(v.kind) ?? 0) + 1;
    perKind.set(v.kind, n);
    if (n <= violationsPerKindMax) kept.push(v);
  }
  return kept;
}
