import type { NodeId } from "./types.js";

/**
 * Quorum math for a single majority configuration. A leaf with no dependencies, paired in the tests with
 * a naive reference implementation (Raft paper, section 5.4.2 for commit; 5.2 for elections).
 */

export function majority(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The largest index that a majority of voters have durably stored: sort the match indexes in
 * descending order and take the one at position majority-1. An empty configuration commits nothing.
 */
export function committedIndex(voters: readonly NodeId[], matchOf: (id: NodeId) => number): number {
  if (voters.length === 0) return 0;
  const matches = voters.map(matchOf);
  matches.sort((a, b) => b - a);
  return matches[majority(voters.length) - 1] ?? 0;
}

/**
 * Whether a majority of voters satisfy `has` (acknowledged a read round, were heard from lately, ...).
 * Ids outside `voters` never count. An empty configuration has no quorum.
 */
export function hasQuorum(voters: readonly NodeId[], has: (id: NodeId) => boolean): boolean {
  if (voters.length === 0) return false;
  let count = 0;
  for (const id of voters) if (has(id)) count++;
  return count >= majority(voters.length);
}

export type VoteResult = "won" | "lost" | "pending";

/** Won once a majority granted; lost once a majority can no longer grant; pending otherwise. */
export function voteResult(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const vote = votes.get(id);
    if (vote === true) granted++;
    else if (vote === false) rejected++;
  }
  const needed = majority(voters.length);
  if (granted >= needed) return "won";
  if (voters.length - rejected < needed) return "lost";
  return "pending";
}
