import { describe, expect, it } from "vitest";
import { Network } from "./network.js";

const electionTicks = 10;

/** The terms of every node, for "nothing changed" assertions. */
function terms(net: Network): number[] {
  return net.ids.map((id) => net.status(id).term);
}

describe("PreVote (thesis 9.6)", () => {
  it("keeps a partitioned follower's term where it was, so its return disturbs no one", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    const [cutOff] = net.ids.filter((id) => id !== leader);
    if (cutOff === undefined) throw new Error("three nodes expected");
    const termsBefore = terms(net);

    // Alone, it times out again and again; each PreVote fails, so it never raises its term.
    net.isolate(cutOff);
    const mark = net.mark();
    net.tickAll(10 * electionTicks);
    const votes = net.sentSince(mark, "vote");
    expect(votes.length).toBeGreaterThan(0);
    expect(votes.every((m) => m.type === "vote" && m.preVote)).toBe(true);
    expect(terms(net)).toEqual(termsBefore);

    net.reconnect(cutOff);
    net.tickAll(2 * electionTicks);
    expect(net.leaders()).toEqual([leader]);
    expect(terms(net)).toEqual(termsBefore);
    expect(net.status(cutOff).leader).toBe(leader);
  });

  it("is what prevents the disruption: without it the returning node forces a new term", () => {
    const net = new Network([1, 2, 3], { preVote: false, checkQuorum: false });
    const leader = net.tickUntilLeader();
    const [cutOff] = net.ids.filter((id) => id !== leader);
    if (cutOff === undefined) throw new Error("three nodes expected");
    const term = net.status(leader).term;

    net.isolate(cutOff);
    net.tickAll(10 * electionTicks);
    expect(net.status(cutOff).term).toBeGreaterThan(term + 3);

    // Its next vote request carries its inflated term: the leader steps down and everyone moves on.
    net.reconnect(cutOff);
    net.tickAll(3 * electionTicks);
    expect(net.status(net.leader()).term).toBeGreaterThan(term + 3);
  });

  it("does not grant a PreVote to a node whose log is behind", () => {
    // Without CheckQuorum leases the follower answers at once, so its answer can only be about the log.
    const net = new Network([1, 2, 3], { checkQuorum: false });
    const leader = net.tickUntilLeader();
    const [behind, other] = net.ids.filter((id) => id !== leader);
    if (behind === undefined || other === undefined) throw new Error("three nodes expected");
    net.isolate(behind);
    net.propose(leader, "the follower that stays misses this");

    // The leader crashes; the node that is behind comes back and campaigns first.
    net.crash(leader);
    net.reconnect(behind);
    const termBefore = net.status(other).term;
    const mark = net.mark();
    net.campaign(behind);
    const answers = net.sentSince(mark, "voteResp");
    expect(answers).toEqual([expect.objectContaining({ from: other, preVote: true, granted: false })]);
    expect(net.status(behind).role).not.toBe("leader");
    expect(net.status(other).term).toBe(termBefore);

    // The node with the newer log wins, and the other catches up.
    expect(net.tickUntilLeader([behind, other])).toBe(other);
    net.tickAll(1);
    expect(net.appliedData(behind)).toEqual(["the follower that stays misses this"]);
  });
});
