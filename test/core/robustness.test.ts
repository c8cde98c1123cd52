import { describe, expect, it } from "vitest";
import type { NodeId } from "../../src/core/index.js";
import { Network } from "./network.js";

/** The part of a node's status that garbage input must not change. */
function snapshotOf(net: Network, id: NodeId) {
  const { role, term, vote, leader, commit, applied, firstIndex, lastIndex } = net.status(id);
  return { role, term, vote, leader, commit, applied, firstIndex, lastIndex };
}

describe("garbage from a real member", () => {
  it("ignores an append whose entry has a term that is not an integer", () => {
    const net = new Network([1, 2, 3]);
    net.electLeader(1);
    const { term, lastIndex } = net.status(2);
    const before = snapshotOf(net, 2);

    // Well-formed in every other way: from the leader, in its term, right after node 2's last entry.
    net.node(2).step({
      type: "append",
      from: 1,
      to: 2,
      term,
      prevIndex: lastIndex,
      prevTerm: term,
      entries: [{ index: lastIndex + 1, term: Number.NaN, type: "normal", data: new Uint8Array(1) }],
      commit: 0,
    });
    // An accepted NaN term never becomes stable (NaN !== NaN), so the node would offer a Ready forever.
    net.deliver();
    expect(snapshotOf(net, 2)).toEqual(before);
  });

  it("does not let an acknowledgement of a read round never started confirm a later read", () => {
    const net = new Network([1, 2, 3, 4, 5]);
    net.electLeader(1);
    // Node 3 "acknowledges" a read round far in the future.
    net.node(1).step({ type: "heartbeatResp", from: 3, to: 1, term: net.status(1).term, readRound: 1_000_000 });
    net.deliver();

    // The classic stale-read setup: the leader and one follower are cut off; the majority elects a
    // new leader and commits a write, while the old leader still believes it leads.
    net.partition([1, 2], [3, 4, 5]);
    const newLeader = tickUntilLeaderAmong(net, [3, 4, 5]);
    net.propose(newLeader, "newer write");
    const newerWrite = net.status(newLeader).commit;
    expect(net.status(1).role).toBe("leader");

    net.node(1).readIndex(7);
    net.tickAll(1);
    for (const read of net.readStatesOf(1)) {
      expect(read.index === 0 || read.index >= newerWrite, `read state ${JSON.stringify(read)} misses index ${newerWrite}`).toBe(true);
    }
  });
});

/** Ticks everyone until one of `group` leads; bounded by a few election timeouts. */
function tickUntilLeaderAmong(net: Network, group: readonly NodeId[]): NodeId {
  const ticksMax = 100;
  for (let i = 0; i < ticksMax; i++) {
    const leader = group.find((id) => net.status(id).role === "leader");
    if (leader !== undefined) return leader;
    net.tickAll(1);
  }
  throw new Error(`no leader among [${group.join(", ")}] after ${ticksMax} ticks`);
}
