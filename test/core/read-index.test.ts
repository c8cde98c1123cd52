import { describe, expect, it } from "vitest";
import type { NodeId, ReadState } from "../../src/core/index.js";
import { Network } from "./network.js";

const electionTicks = 10;

function readStateOf(net: Network, id: NodeId, requestId: number): ReadState | undefined {
  return net.readStatesOf(id).find((r) => r.requestId === requestId);
}

describe("ReadIndex (thesis 6.4)", () => {
  it("answers a read on the leader with its commit index, but only after a heartbeat round", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    net.propose(leader, "written before the read");
    const { commit } = net.status(leader);

    // The followers' answers are held back: the leader cannot yet know it still leads.
    net.hold = (m) => m.type === "heartbeatResp";
    net.node(leader).readIndex(7);
    net.deliver();
    expect(readStateOf(net, leader, 7)).toBeUndefined();

    net.hold = () => false;
    net.release();
    expect(readStateOf(net, leader, 7)).toEqual({ requestId: 7, index: commit });
  });

  it("lets every read that arrives before the round starts share one heartbeat round", () => {
    const net = new Network([1, 2, 3, 4, 5]);
    const leader = net.tickUntilLeader();
    const { commit } = net.status(leader);

    const mark = net.mark();
    for (let requestId = 1; requestId <= 20; requestId++) net.node(leader).readIndex(requestId);
    net.deliver();

    // One heartbeat per follower, not one per read.
    expect(net.sentSince(mark, "heartbeat")).toHaveLength(4);
    expect(net.readStatesOf(leader)).toEqual(Array.from({ length: 20 }, (_, i) => ({ requestId: i + 1, index: commit })));
  });

  it("makes reads that arrive during a round wait for the next one, which they share", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    const mark = net.mark();

    net.hold = (m) => m.type === "heartbeatResp";
    net.node(leader).readIndex(1);
    net.deliver();
    // Round 1 is out. Reads 2 and 3 arrive after its heartbeats left, so its answers prove nothing about them.
    net.node(leader).readIndex(2);
    net.node(leader).readIndex(3);
    net.deliver();
    expect(net.sentSince(mark, "heartbeat")).toHaveLength(2);

    net.hold = () => false;
    net.release();
    expect(net.readStatesOf(leader).map((r) => r.requestId)).toEqual([1, 2, 3]);
    // Two rounds in all.
    expect(net.sentSince(mark, "heartbeat")).toHaveLength(4);
  });

  it("forwards a read on a follower to the leader and answers it there", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    const [follower] = net.ids.filter((id) => id !== leader);
    if (follower === undefined) throw new Error("three nodes expected");
    net.propose(leader, "x");

    const mark = net.mark();
    net.node(follower).readIndex(9);
    net.deliver();

    expect(net.sentSince(mark, "readIndex", "readIndexResp").map((m) => `${m.type} ${m.from}->${m.to}`)).toEqual([
      `readIndex ${follower}->${leader}`,
      `readIndexResp ${leader}->${follower}`,
    ]);
    expect(readStateOf(net, follower, 9)).toEqual({ requestId: 9, index: net.status(leader).commit });
  });

  it("fails a read on a follower that knows no leader at once", () => {
    const net = new Network([1, 2, 3]);
    net.node(2).readIndex(4);
    net.deliver();
    expect(readStateOf(net, 2, 4)).toEqual({ requestId: 4, index: 0 });
  });

  it("fails a forwarded read at once when the follower stops knowing the leader, not at its timeout", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    const [follower, other] = net.ids.filter((id) => id !== leader);
    if (follower === undefined || other === undefined) throw new Error("three nodes expected");
    // The read goes to a leader that will never answer it.
    net.isolate(leader);
    net.node(follower).readIndex(5);
    net.deliver();
    expect(readStateOf(net, follower, 5)).toBeUndefined();
    // A vote for a newer term (a transfer's, which no lease ignores) leaves the follower without a leader.
    const s = net.status(follower);
    net.stepOne({
      type: "vote",
      from: other,
      to: follower,
      term: s.term + 1,
      preVote: false,
      lastLogIndex: s.lastIndex,
      lastLogTerm: s.term,
      transfer: true,
    });
    net.deliver();
    expect(net.status(follower).leader).toBe(0);
    expect(readStateOf(net, follower, 5)).toEqual({ requestId: 5, index: 0 });
  });

  it("holds a read on a new leader until it has committed an entry of its own term", () => {
    const net = new Network([1, 2, 3]);
    const first = net.tickUntilLeader();
    net.propose(first, "x");
    const [next] = net.ids.filter((id) => id !== first);
    if (next === undefined) throw new Error("three nodes expected");

    // Leadership moves to `next`, but its no-op reaches no one yet: it cannot know the latest commit index.
    net.hold = (m) => m.type === "append" && m.from === next;
    net.node(first).transferLeadership(next);
    net.deliver();
    expect(net.leaders()).toEqual([next]);
    net.node(next).readIndex(5);
    net.deliver();
    expect(readStateOf(net, next, 5)).toBeUndefined();

    net.hold = () => false;
    net.release();
    net.tickAll(1);
    const noop = net.status(next).commit;
    expect(net.status(next).lastIndex).toBe(noop);
    expect(readStateOf(net, next, 5)).toEqual({ requestId: 5, index: noop });
  });

  it("fails reads beyond pendingReadsMax at once instead of queueing them", () => {
    const net = new Network([1, 2, 3], { pendingReadsMax: 3 });
    const leader = net.tickUntilLeader();
    net.hold = (m) => m.type === "heartbeatResp";
    for (let requestId = 1; requestId <= 5; requestId++) net.node(leader).readIndex(requestId);
    net.deliver();
    expect(net.readStatesOf(leader)).toEqual([
      { requestId: 4, index: 0 },
      { requestId: 5, index: 0 },
    ]);
  });
});

describe("the stale read of a deposed leader", () => {
  /**
   * The classic setup: the leader and one follower are cut off from the other three of five. The
   * majority elects a new leader and commits a newer write, while the old leader still believes it
   * leads. A read served by the old leader at its own commit index would miss that write.
   */
  function staleLeaderSetup(): { net: Network; oldLeader: NodeId; minorityFollower: NodeId; newerWrite: number } {
    const net = new Network([1, 2, 3, 4, 5]);
    const oldLeader = net.tickUntilLeader();
    net.propose(oldLeader, "old value");
    const [minorityFollower, ...majority] = net.ids.filter((id) => id !== oldLeader);
    if (minorityFollower === undefined) throw new Error("five nodes expected");

    net.partition([oldLeader, minorityFollower], majority);
    const newLeader = net.tickUntilLeader(majority);
    net.propose(newLeader, "newer value");
    const newerWrite = net.status(newLeader).commit;
    expect(net.appliedData(newLeader)).toEqual(["old value", "newer value"]);
    expect(net.status(oldLeader).commit).toBeLessThan(newerWrite);
    return { net, oldLeader, minorityFollower, newerWrite };
  }

  /** Every read state `id` ever reported is either a failure (0) or covers the newer write. */
  function expectNoStaleReadState(net: Network, id: NodeId, newerWrite: number): void {
    for (const read of net.readStatesOf(id)) {
      expect(read.index === 0 || read.index >= newerWrite, `node ${id} read state ${JSON.stringify(read)}`).toBe(true);
    }
  }

  it("never answers with an index that misses the newer write, and fails the read once it steps down", () => {
    const { net, oldLeader, newerWrite } = staleLeaderSetup();
    // It may not have noticed yet: CheckQuorum gives it up to two election timeouts.
    const stillLeading = net.status(oldLeader).role === "leader";

    net.node(oldLeader).readIndex(1);
    net.tickUntil(() => readStateOf(net, oldLeader, 1) !== undefined, "the read is answered", 3 * electionTicks);

    expectNoStaleReadState(net, oldLeader, newerWrite);
    expect(readStateOf(net, oldLeader, 1)).toEqual({ requestId: 1, index: 0 });
    if (stillLeading) expect(net.status(oldLeader).role).toBe("follower");
  });

  it("does so even when asked the moment it is cut off, while it certainly still leads", () => {
    const net = new Network([1, 2, 3, 4, 5]);
    const oldLeader = net.tickUntilLeader();
    const [minorityFollower, ...majority] = net.ids.filter((id) => id !== oldLeader);
    if (minorityFollower === undefined) throw new Error("five nodes expected");

    net.partition([oldLeader, minorityFollower], majority);
    net.node(oldLeader).readIndex(1);
    net.node(minorityFollower).readIndex(2);
    net.deliver();
    expect(net.status(oldLeader).role).toBe("leader");

    const newLeader = net.tickUntilLeader(majority);
    net.propose(newLeader, "newer value");
    const newerWrite = net.status(newLeader).commit;
    net.tickAll(3 * electionTicks);

    for (const id of [oldLeader, minorityFollower]) expectNoStaleReadState(net, id, newerWrite);
    expect(readStateOf(net, oldLeader, 1)).toEqual({ requestId: 1, index: 0 });
    expect(readStateOf(net, minorityFollower, 2)).toEqual({ requestId: 2, index: 0 });
  });

  it("fails a read forwarded by the follower on the old leader's side", () => {
    const { net, minorityFollower, newerWrite } = staleLeaderSetup();
    net.node(minorityFollower).readIndex(3);
    net.tickAll(3 * electionTicks);
    expectNoStaleReadState(net, minorityFollower, newerWrite);
    expect(readStateOf(net, minorityFollower, 3)).toEqual({ requestId: 3, index: 0 });
  });
});
