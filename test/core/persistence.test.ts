import { describe, expect, it } from "vitest";
import { Network } from "./network.js";
import { expectSameAppliedData, expectStateMachineSafety, logTerms } from "./safety.js";

/**
 * The harness persists every Ready before sending its messages, as the driver must. A crash loses the
 * node's volatile state (role, leader, progress, commit beyond the persisted hard state); a restart
 * reads term, vote, commit and the log back from its MemoryStorage.
 */
describe("persistence across crashes", () => {
  it("keeps every committed command when every node crashes and restarts", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    for (const command of ["a", "b", "c"]) net.propose(leader, command);
    const before = net.ids.map((id) => ({ term: net.status(id).term, log: logTerms(net, id) }));

    for (const id of net.ids) net.crash(id);
    for (const id of net.ids) net.start(id);

    // Term and log come back from storage; the committed commands are applied again at once.
    expect(net.ids.map((id) => ({ term: net.status(id).term, log: logTerms(net, id) }))).toEqual(before);
    for (const id of net.ids) expect(net.status(id).role).toBe("follower");

    const next = net.tickUntilLeader();
    net.propose(next, "d");
    for (const id of net.ids) expect(net.appliedData(id)).toEqual(["a", "b", "c", "d"]);
  });

  it("carries on through repeated crashes of the leader and of followers, one at a time", () => {
    const net = new Network([1, 2, 3, 4, 5]);
    const commands: string[] = [];
    for (let round = 0; round < 6; round++) {
      const leader = net.tickUntilLeader();
      const command = `round ${round}`;
      net.propose(leader, command);
      commands.push(command);
      // Alternate: crash the leader, then a follower.
      const victim = round % 2 === 0 ? leader : net.ids.find((id) => id !== leader);
      if (victim === undefined) throw new Error("no follower");
      net.restart(victim);
    }
    net.tickUntilLeader();
    net.tickAll(2);
    for (const id of net.ids) expect(net.appliedData(id)).toEqual(commands);
    expectStateMachineSafety(net);
  });

  it("does not let a restarted node vote twice in one term", () => {
    // Without PreVote the candidate's term is visible in its vote requests; the leases of CheckQuorum
    // would only delay the story.
    const net = new Network([1, 2, 3], { preVote: false, checkQuorum: false });

    // Node 1 campaigns; only node 2 hears it and grants its vote. The answer never arrives.
    net.drop = (m) => (m.type === "vote" && m.to === 3) || m.type === "voteResp";
    net.campaign(1);
    const term = net.status(1).term;
    expect(net.status(2)).toMatchObject({ term, vote: 1 });

    // Node 2 crashes and restarts: its vote is on disk.
    net.restart(2);
    expect(net.status(2)).toMatchObject({ term, vote: 1 });

    // Node 3 now campaigns in that same term and asks node 2, which must refuse.
    net.drop = () => false;
    net.campaign(3);
    expect(net.status(3).term).toBe(term);
    expect(net.status(3).role).not.toBe("leader");
    expect(net.status(2).vote).toBe(1);
  });

  it("keeps a follower's uncommitted entries, which a leader may have counted, across a restart", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    const [follower, absent] = net.ids.filter((id) => id !== leader);
    if (follower === undefined || absent === undefined) throw new Error("three nodes expected");
    net.isolate(absent);

    // The follower stores and acknowledges "x"; the leader commits it on the strength of that ack. The
    // follower restarts before it hears the new commit index.
    net.drop = (m) => m.type === "append" && m.to === follower && m.entries.length === 0;
    net.propose(leader, "x");
    expect(net.status(leader).commit).toBe(net.status(follower).lastIndex);
    expect(net.status(follower).commit).toBeLessThan(net.status(leader).commit);
    net.restart(follower);
    net.drop = () => false;

    // The leader dies too: only the follower can pass "x" on, and the cluster must still apply it.
    net.crash(leader);
    net.reconnect(absent);
    const next = net.tickUntilLeader([follower, absent]);
    expect(next).toBe(follower);
    net.tickAll(2);
    expect(net.appliedData(absent)).toEqual(["x"]);
    net.start(leader);
    net.tickAll(2);
    expectSameAppliedData(net);
  });
});
