import { describe, expect, it } from "vitest";
import type { NodeId } from "../../src/core/index.js";
import { Network } from "./network.js";

const electionTicks = 10;

function electedWithFollowers(net: Network): { leader: NodeId; target: NodeId; other: NodeId } {
  const leader = net.tickUntilLeader();
  const [target, other] = net.ids.filter((id) => id !== leader);
  if (target === undefined || other === undefined) throw new Error("three nodes expected");
  return { leader, target, other };
}

describe("leadership transfer (thesis 3.10)", () => {
  it("makes a caught-up follower leader at once, in the next term, without waiting for a timeout", () => {
    const net = new Network([1, 2, 3]);
    const { leader, target } = electedWithFollowers(net);
    net.propose(leader, "before the transfer");
    const { term } = net.status(leader);

    const mark = net.mark();
    net.node(leader).transferLeadership(target);
    net.deliver();

    expect(net.sentSince(mark, "timeoutNow")).toEqual([expect.objectContaining({ from: leader, to: target })]);
    expect(net.leaders()).toEqual([target]);
    expect(net.status(target).term).toBe(term + 1);
    expect(net.status(leader)).toMatchObject({ role: "follower", leader: target });
    net.propose(target, "after the transfer");
    for (const id of net.ids) expect(net.appliedData(id)).toEqual(["before the transfer", "after the transfer"]);
  });

  it("catches a lagging target up first, and refuses proposals while the transfer is under way", () => {
    const net = new Network([1, 2, 3]);
    const { leader, target } = electedWithFollowers(net);

    // The target misses a few entries; everything it is sent is held back for now.
    net.isolate(target);
    for (const command of ["a", "b", "c"]) net.propose(leader, command);
    net.reconnect(target);
    net.hold = (m) => m.to === target;
    net.node(leader).transferLeadership(target);
    net.deliver();
    expect(net.status(leader).leadTransferee).toBe(target);

    const refused = net.propose(leader, "during the transfer");
    expect(refused).toEqual({ ok: false, reason: "transferring", leader });

    // The held messages arrive; a heartbeat round lets the leader resume its probe of the target.
    net.hold = () => false;
    net.release();
    net.tickAll(1);
    expect(net.leaders()).toEqual([target]);
    expect(net.appliedData(target)).toEqual(["a", "b", "c"]);
  });

  it("abandons a transfer to a node that does not answer within an election timeout", () => {
    const net = new Network([1, 2, 3]);
    const { leader, target } = electedWithFollowers(net);
    net.crash(target);

    net.node(leader).transferLeadership(target);
    expect(net.propose(leader, "refused").ok).toBe(false);
    net.tickAll(electionTicks);

    expect(net.leaders()).toEqual([leader]);
    expect(net.status(leader).leadTransferee).toBe(0);
    expect(net.propose(leader, "accepted again").ok).toBe(true);
  });

  it("ignores a transfer to itself, to a non-member, or from a follower", () => {
    const net = new Network([1, 2, 3]);
    const { leader, target } = electedWithFollowers(net);
    const mark = net.mark();
    net.node(leader).transferLeadership(leader);
    net.node(leader).transferLeadership(42);
    net.node(target).transferLeadership(leader);
    net.deliver();
    expect(net.sentSince(mark)).toEqual([]);
    expect(net.status(leader).leadTransferee).toBe(0);
    expect(net.propose(leader, "still leading").ok).toBe(true);
  });
});
