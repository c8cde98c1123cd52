import { describe, expect, it } from "vitest";
import { committedIndex, hasQuorum, majority, voteResult, type NodeId, type VoteResult } from "../../src/core/index.js";
import { createPrng, type Prng } from "../../src/lib/prng.js";

/**
 * The quorum math against reference implementations written the slow, obvious way (etcd's
 * quorum/quick_test.go pairs its algorithms the same way). Seeded: a failure names its seed and input.
 */
const casesMax = 5_000;

/** The commit index by definition: the largest index that more than half of the voters have reached. */
function naiveCommittedIndex(voters: readonly NodeId[], match: ReadonlyMap<NodeId, number>): number {
  let best = 0;
  for (const candidate of voters.map((id) => match.get(id) ?? 0)) {
    const reached = voters.filter((id) => (match.get(id) ?? 0) >= candidate).length;
    if (2 * reached > voters.length && candidate > best) best = candidate;
  }
  return best;
}

/** The election outcome by definition: won with more than half granted, lost once that cannot happen. */
function naiveVoteResult(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const granted = voters.filter((id) => votes.get(id) === true).length;
  const undecided = voters.filter((id) => !votes.has(id)).length;
  if (2 * granted > voters.length) return "won";
  if (2 * (granted + undecided) <= voters.length) return "lost";
  return "pending";
}

/** A quorum by definition: more than half of the voters, and never in an empty configuration. */
function naiveHasQuorum(voters: readonly NodeId[], holders: ReadonlySet<NodeId>): boolean {
  return voters.length > 0 && 2 * voters.filter((id) => holders.has(id)).length > voters.length;
}

/** 0 to 9 distinct voter ids, not necessarily small or sorted. */
function randomVoters(prng: Prng): NodeId[] {
  const ids = new Set<NodeId>();
  const count = prng.int(0, 9);
  while (ids.size < count) ids.add(prng.int(1, 1_000));
  return [...ids];
}

describe("quorum math against a naive reference", () => {
  it("majority is more than half", () => {
    for (let n = 0; n <= 100; n++) {
      expect(2 * majority(n) > n && 2 * (majority(n) - 1) <= n, `n = ${n}`).toBe(true);
    }
  });

  it("committedIndex agrees with the definition", () => {
    const prng = createPrng(20_240_601);
    for (let c = 0; c < casesMax; c++) {
      const voters = randomVoters(prng);
      const match = new Map<NodeId, number>();
      // Small index ranges make ties common; some voters have no progress at all.
      const indexMax = prng.pick([1, 3, 10, 1_000_000]);
      for (const id of voters) if (prng.chance(0.9)) match.set(id, prng.int(0, indexMax));
      // Progress of non-voters (learners, removed nodes) must not count.
      match.set(5_000, indexMax + 1);

      const got = committedIndex(voters, (id) => match.get(id) ?? 0);
      expect(got, `case ${c}: voters ${JSON.stringify(voters)} match ${JSON.stringify([...match])}`).toBe(
        naiveCommittedIndex(voters, match),
      );
    }
  });

  it("committedIndex never falls when a voter's match rises", () => {
    const prng = createPrng(7);
    for (let c = 0; c < casesMax; c++) {
      const voters = randomVoters(prng);
      if (voters.length === 0) continue;
      const match = new Map<NodeId, number>(voters.map((id) => [id, prng.int(0, 50)]));
      const before = committedIndex(voters, (id) => match.get(id) ?? 0);
      const raised = prng.pick(voters);
      match.set(raised, (match.get(raised) ?? 0) + prng.int(1, 10));
      expect(
        committedIndex(voters, (id) => match.get(id) ?? 0),
        `case ${c}`,
      ).toBeGreaterThanOrEqual(before);
    }
  });

  it("voteResult agrees with the definition", () => {
    const prng = createPrng(31_337);
    for (let c = 0; c < casesMax; c++) {
      const voters = randomVoters(prng);
      const votes = new Map<NodeId, boolean>();
      for (const id of voters) {
        const roll = prng.next();
        if (roll < 0.4) votes.set(id, true);
        else if (roll < 0.7) votes.set(id, false);
      }
      // Votes from non-voters must not count.
      if (prng.chance(0.5)) votes.set(5_000, prng.chance(0.5));

      expect(voteResult(voters, votes), `case ${c}: voters ${JSON.stringify(voters)} votes ${JSON.stringify([...votes])}`).toBe(
        naiveVoteResult(voters, votes),
      );
    }
  });

  it("hasQuorum agrees with the definition", () => {
    const prng = createPrng(4_242);
    for (let c = 0; c < casesMax; c++) {
      const voters = randomVoters(prng);
      const holders = new Set<NodeId>(voters.filter(() => prng.chance(0.5)));
      // Non-voters must not count.
      if (prng.chance(0.5)) holders.add(5_000);
      expect(
        hasQuorum(voters, (id) => holders.has(id)),
        `case ${c}: voters ${JSON.stringify(voters)} holders ${JSON.stringify([...holders])}`,
      ).toBe(naiveHasQuorum(voters, holders));
    }
  });
});
