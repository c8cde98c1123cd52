import { describe, expect, it } from "vitest";
import type { NodeId } from "../../src/core/index.js";
import { Network } from "./network.js";
import { expectSameAppliedData, logTerms } from "./safety.js";

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

/** Ticks until a node of `group` leads a term newer than `afterTerm` (a stale leader may linger). */
function tickUntilNewLeader(net: Network, group: readonly NodeId[], afterTerm: number): NodeId {
  const newLeader = (): NodeId | undefined => group.find((id) => net.status(id).role === "leader" && net.status(id).term > afterTerm);
  net.tickUntil(() => newLeader() !== undefined, `a leader newer than term ${afterTerm} among [${group.join(", ")}]`);
  const leader = newLeader();
  if (leader === undefined) throw new Error("tickUntil returned without a leader");
  return leader;
}

function proposeMany(net: Network, leader: NodeId, prefix: string, count: number): void {
  net.proposeAll(
    leader,
    Array.from({ length: count }, (_, i) => `${prefix} ${i}`),
  );
}

describe("backing up over many divergent entries (the classic lab's TestBackup)", () => {
  it("spends round trips per divergent term, not per divergent entry, on several nodes", () => {
    const net = new Network([1, 2, 3, 4, 5]);
    const first = net.tickUntilLeader();
    net.propose(first, "start");
    const [a, c, d, e] = net.ids.filter((id) => id !== first);
    if (a === undefined || c === undefined || d === undefined || e === undefined) throw new Error("five nodes expected");

    // The first leader and follower a are cut off: 50 entries reach a and go no further.
    net.partition([first, a], [c, d, e]);
    proposeMany(net, first, "lost with the first leader", 50);
    expect(net.status(a).lastIndex).toBe(net.status(first).lastIndex);

    // c, d and e elect a leader and commit 50 entries of their own.
    const firstTerm = net.status(first).term;
    const second = tickUntilNewLeader(net, [c, d, e], firstTerm);
    proposeMany(net, second, "committed by the second leader", 50);
    const [secondFollower, leftBehind] = [c, d, e].filter((id) => id !== second);
    if (secondFollower === undefined || leftBehind === undefined) throw new Error("three nodes expected");

    // The second leader keeps one follower: 50 more entries stop there.
    net.heal();
    net.partition([second, secondFollower], [first, a, leftBehind]);
    proposeMany(net, second, "lost with the second leader", 50);

    // The first leader, a and the node left behind form a majority. Only the node left behind has
    // the committed entries, so only it can win; it then brings first and a back over 50 entries.
    const secondTerm = net.status(second).term;
    let mark = net.mark();
    const third = tickUntilNewLeader(net, [first, a, leftBehind], secondTerm);
    expect(third).toBe(leftBehind);
    proposeMany(net, third, "committed by the third leader", 50);
    expect(net.status(first).commit).toBe(net.status(third).commit);
    expect(net.status(a).commit).toBe(net.status(third).commit);
    const rejectionsForTheFirstGroup = rejectionsSince(net, mark);

    // Leadership moves to the first node, whose probes start at the end of its log, far beyond where
    // the second leader's log parts from it. Everyone together: the second leader and its follower back
    // up over their 50 divergent entries.
    net.node(third).transferLeadership(first);
    net.deliver();
    expect(net.leaders()).toContain(first);
    net.heal();
    mark = net.mark();
    net.commit("everyone");
    net.tickAll(2);
    const rejectionsForTheSecondGroup = rejectionsSince(net, mark);

    for (const id of net.ids) expect(net.status(id).commit, `node ${id}`).toBe(net.status(third).commit);
    expectSameAppliedData(net);
    expect(net.appliedData(1)).not.toContain("lost with the first leader 0");
    expect(net.appliedData(1)).not.toContain("lost with the second leader 0");
    // Two nodes with one divergent term each, per phase: one round trip each, where stepping back one
    // entry per probe would cost 50 each.
    expect(rejectionsForTheFirstGroup).toBe(2);
    expect(rejectionsForTheSecondGroup).toBe(2);
  });
});

/**
 * Raft paper, Figure 7: the logs a new leader (term 8) may find on its followers. Each entry of the
 * figure stands for ten here, so followers hold up to 80 divergent entries.
 */
const figure7 = {
  leader: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6],
  a: [1, 1, 1, 4, 4, 5, 5, 6, 6],
  b: [1, 1, 1, 4],
  c: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
  d: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
  e: [1, 1, 1, 4, 4, 4, 4],
  f: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
} as const;
const entriesPerFigureEntry = 10;

/**
 * Writes a log of the given terms (each repeated) into node `id`'s storage with the hard state of the
 * figure's moment (everyone has seen term 7; the leader is about to win term 8), and restarts it.
 */
function installLog(net: Network, id: NodeId, figureTerms: readonly number[]): void {
  const terms = figureTerms.flatMap((term) => Array.from({ length: entriesPerFigureEntry }, () => term));
  const storage = net.storage(id);
  storage.append(terms.map((term, i) => ({ index: i + 1, term, type: "normal", data: new TextEncoder().encode(`t${term}`) })));
  storage.setHardState({ term: 7, vote: 0, commit: 0 });
  net.restart(id);
}

/** How many distinct terms of `follower` the leader's log lacks at the same index. */
function divergentTerms(leader: readonly number[], follower: readonly number[]): number {
  const terms = new Set<number>();
  follower.forEach((term, i) => {
    if (leader[i] !== term) terms.add(term);
  });
  return terms.size;
}

describe("Figure 7: a new leader brings every kind of follower log in line", () => {
  for (const name of ["a", "b", "c", "d", "e", "f"] as const) {
    it(`follower (${name}) in at most one round trip per divergent term, plus one`, () => {
      // Node 1 leads with the leader's log; node 3 holds the same log and votes for it; node 2 is the
      // follower, and hears nothing until the election is over.
      const net = new Network([1, 2, 3], { checkQuorum: false });
      installLog(net, 1, figure7.leader);
      installLog(net, 3, figure7.leader);
      installLog(net, 2, figure7[name]);
      net.drop = (m) => m.to === 2;
      net.electLeader(1);
      expect(net.status(1).term).toBe(8);
      net.drop = () => false;

      const mark = net.mark();
      net.tickAll(1);

      expect(logTerms(net, 2)).toEqual(logTerms(net, 1));
      const allowed = divergentTerms(figure7.leader, figure7[name]) + 1;
      expect(rejectionsSince(net, mark)).toBeLessThanOrEqual(allowed);
    });
  }
});
