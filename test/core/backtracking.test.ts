import { describe, expect, it } from "vitest";
import { Network } from "./network.js";

/** Rejected appendResps since `mark`: one per probe round trip spent searching for the match point. */
function rejectionsSince(net: Network, mark: number): number {
  return net.sentSince(mark, "appendResp").filter((m) => m.type === "appendResp" && m.reject).length;
}

describe("log backtracking", () => {
  it("catches up a follower with an empty log in a constant number of round trips", () => {
    // Node 3 is down from the start while 1 and 2 commit 60 entries.
    const net = new Network([1, 2, 3]);
    net.crash(3);
    net.electLeader(1);
    for (let i = 0; i < 60; i++) net.propose(1, `entry ${i}`);

    // Node 1 hands over to node 2, whose new term starts its probes at the end of the log.
    net.node(1).transferLeadership(2);
    net.deliver();
    expect(net.leader()).toBe(2);

    // Node 3 comes back with an empty log. Its first rejection says "nothing of mine matches", so the
    // leader can jump straight to the start of the log instead of stepping back one entry per probe.
    net.start(3);
    const mark = net.mark();
    net.tickAll(3);
    expect(net.status(3).commit).toBe(net.status(2).commit);
    expect(rejectionsSince(net, mark)).toBeLessThanOrEqual(2);
  });
});
