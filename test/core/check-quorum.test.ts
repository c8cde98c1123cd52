import { describe, expect, it } from "vitest";
import type { NodeId, VoteRequest } from "../../src/core/index.js";
import { Network } from "./network.js";

const electionTicks = 10;

/** Ticks until `id` is no longer leader; returns how many ticks it took. */
function ticksUntilStepDown(net: Network, id: NodeId, ticksMax: number): number {
  return net.tickUntil(() => net.status(id).role !== "leader", `node ${id} steps down`, ticksMax);
}

describe("CheckQuorum (thesis 6.2)", () => {
  it("makes a leader cut off from its quorum step down within about an election timeout", () => {
    // Whenever the cut falls within the leader's check interval, it notices by the second check.
    for (let offset = 0; offset < electionTicks; offset++) {
      const net = new Network([1, 2, 3, 4, 5]);
      const leader = net.tickUntilLeader();
      net.tickAll(offset);
      net.isolate(leader);
      const ticks = ticksUntilStepDown(net, leader, 3 * electionTicks);
      expect(ticks, `cut ${offset} ticks into the term`).toBeLessThanOrEqual(2 * electionTicks);
      expect(net.status(leader).leader).toBe(0);
    }
  });

  it("keeps a leader that still hears from a majority, even with a minority gone", () => {
    const net = new Network([1, 2, 3, 4, 5]);
    const leader = net.tickUntilLeader();
    const [gone1, gone2] = net.ids.filter((id) => id !== leader);
    if (gone1 === undefined || gone2 === undefined) throw new Error("five nodes expected");
    net.isolate(gone1);
    net.isolate(gone2);
    const { term } = net.status(leader);
    net.tickAll(10 * electionTicks);
    expect(net.status(leader)).toMatchObject({ role: "leader", term });
  });

  it("is what makes the leader step down: without it a cut-off leader leads on", () => {
    const net = new Network([1, 2, 3], { checkQuorum: false });
    const leader = net.tickUntilLeader();
    net.isolate(leader);
    net.tickAll(10 * electionTicks);
    expect(net.status(leader).role).toBe("leader");
  });

  describe("the leader lease on followers", () => {
    /** A vote request for the next term, as a node that lost touch with the leader would send it. */
    function disruptiveVote(net: Network, from: NodeId, to: NodeId): VoteRequest {
      const { term, lastIndex } = net.status(from);
      return { type: "vote", from, to, term: term + 1, preVote: false, lastLogIndex: lastIndex, lastLogTerm: term, transfer: false };
    }

    it("makes a follower that heard from its leader within an election timeout ignore a vote request", () => {
      const net = new Network([1, 2, 3]);
      const leader = net.tickUntilLeader();
      const [follower, disruptor] = net.ids.filter((id) => id !== leader);
      if (follower === undefined || disruptor === undefined) throw new Error("three nodes expected");
      const before = net.status(follower);

      const mark = net.mark();
      net.stepOne(disruptiveVote(net, disruptor, follower));

      // No term change, no vote, and not even a rejection that would teach the disruptor anything.
      expect(net.status(follower)).toMatchObject({ term: before.term, vote: before.vote, leader });
      expect(net.sentSince(mark)).toEqual([]);
    });

    it("lets the follower vote once the leader has been silent for an election timeout", () => {
      const net = new Network([1, 2, 3]);
      const leader = net.tickUntilLeader();
      const [follower, candidate] = net.ids.filter((id) => id !== leader);
      if (follower === undefined || candidate === undefined) throw new Error("three nodes expected");
      net.crash(leader);
      // Ticking only the follower, so that it neither campaigns itself nor hears another candidate.
      for (let i = 0; i < electionTicks; i++) net.node(follower).tick();

      net.stepOne(disruptiveVote(net, candidate, follower));
      expect(net.status(follower)).toMatchObject({ term: net.status(candidate).term + 1, vote: candidate });
    });

    it("does not stand in the way of a leadership transfer", () => {
      const net = new Network([1, 2, 3]);
      const leader = net.tickUntilLeader();
      const [follower, target] = net.ids.filter((id) => id !== leader);
      if (follower === undefined || target === undefined) throw new Error("three nodes expected");

      net.stepOne({ ...disruptiveVote(net, target, follower), transfer: true });
      expect(net.status(follower).vote).toBe(target);
    });
  });
});
