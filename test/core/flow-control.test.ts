import { describe, expect, it } from "vitest";
import type { Message, NodeId } from "../../src/core/index.js";
import { entrySize } from "../../src/core/index.js";
import { Network } from "./network.js";

/** Appends from `from` to `to` that carry entries (not the empty ones that only carry a commit index). */
function appendsWithEntries(messages: readonly Message[], from: NodeId, to: NodeId): Message[] {
  return messages.filter((m) => m.type === "append" && m.from === from && m.to === to && m.entries.length > 0);
}

function bytes(text: string, size: number): string {
  return text.padEnd(size, ".");
}

function leaderAndFollowers(net: Network): { leader: NodeId; slow: NodeId; other: NodeId } {
  const leader = net.tickUntilLeader();
  const [slow, other] = net.ids.filter((id) => id !== leader);
  if (slow === undefined || other === undefined) throw new Error("three nodes expected");
  return { leader, slow, other };
}

describe("flow control", () => {
  it("caps unacknowledged appends to a follower at inflightMsgsMax, and resumes as acks arrive", () => {
    const net = new Network([1, 2, 3], { inflightMsgsMax: 3 });
    const { leader, slow } = leaderAndFollowers(net);

    // The slow follower stores everything it gets, but its acknowledgements are held up.
    net.hold = (m) => m.type === "appendResp" && m.from === slow;
    const mark = net.mark();
    for (let i = 0; i < 10; i++) net.propose(leader, `entry ${i}`);
    expect(appendsWithEntries(net.sentSince(mark), leader, slow)).toHaveLength(3);
    expect(net.appliedData(leader)).toHaveLength(10);

    // The acks arrive: the window opens and the rest follows.
    net.hold = () => false;
    net.release();
    net.tickAll(1);
    expect(net.appliedData(slow)).toHaveLength(10);
  });

  it("caps the bytes of unacknowledged entries to a follower at inflightBytesMax", () => {
    // Each entry is 100 bytes of data (124 counted); two appends fill a 200-byte window.
    const net = new Network([1, 2, 3], { inflightBytesMax: 200 });
    const { leader, slow } = leaderAndFollowers(net);
    net.hold = (m) => m.type === "appendResp" && m.from === slow;
    const mark = net.mark();
    for (let i = 0; i < 10; i++) net.propose(leader, bytes(`entry ${i}`, 100));
    expect(appendsWithEntries(net.sentSince(mark), leader, slow)).toHaveLength(2);

    net.hold = () => false;
    net.release();
    net.tickAll(1);
    expect(net.appliedData(slow)).toHaveLength(10);
  });

  it("puts at most msgBytesMax of entries in one append", () => {
    const msgBytesMax = 500;
    const net = new Network([1, 2, 3], { msgBytesMax });
    const { leader, slow } = leaderAndFollowers(net);
    const commands = Array.from({ length: 40 }, (_, i) => bytes(`entry ${i}`, 100));

    const mark = net.mark();
    net.proposeAll(leader, commands);

    // 124 counted bytes each: four entries per append, ten appends per follower.
    const appends = appendsWithEntries(net.sentSince(mark), leader, slow);
    for (const m of appends) {
      if (m.type !== "append") continue;
      expect(m.entries.reduce((sum, e) => sum + entrySize(e), 0)).toBeLessThanOrEqual(msgBytesMax);
    }
    expect(appends).toHaveLength(10);
    for (const id of net.ids) expect(net.appliedData(id)).toEqual(commands);
  });

  it("refuses a proposal larger than msgBytesMax, leaving the log as it was", () => {
    const msgBytesMax = 500;
    const net = new Network([1, 2, 3], { msgBytesMax });
    const { leader } = leaderAndFollowers(net);
    const before = net.status(leader).lastIndex;

    const mark = net.mark();
    const result = net.propose(leader, bytes("too big", msgBytesMax));
    expect(result).toEqual({ ok: false, reason: "tooLarge", leader });
    expect(net.status(leader).lastIndex).toBe(before);
    expect(net.sentSince(mark)).toEqual([]);

    // The largest proposal that fits (its 24 bytes of overhead counted) is taken.
    expect(net.propose(leader, bytes("fits", msgBytesMax - 24)).ok).toBe(true);
  });

  it("refuses proposals with reason overloaded once uncommittedBytesMax are waiting, until they commit", () => {
    const net = new Network([1, 2, 3], { uncommittedBytesMax: 1000 });
    const { leader, slow, other } = leaderAndFollowers(net);
    net.isolate(slow);
    net.isolate(other);

    const accepted = Array.from({ length: 20 }, (_, i) => net.propose(leader, bytes(`entry ${i}`, 100))).filter((r) => r.ok);
    // 124 bytes each: the ninth would exceed 1000.
    expect(accepted).toHaveLength(8);
    expect(net.propose(leader, "one more")).toEqual({ ok: false, reason: "overloaded", leader });

    net.heal();
    net.tickAll(1);
    expect(net.appliedData(leader)).toHaveLength(8);
    expect(net.propose(leader, "one more").ok).toBe(true);
  });

  it("streams a whole window to the follower whose acknowledgements complete the quorum", () => {
    // One follower is down, so every ack of the other advances the commit index. 100 entries, two per
    // append: with a window of 256 they can all be in flight after the first round trip.
    const net = new Network([1, 2, 3], { msgBytesMax: 200 });
    const { leader, slow, other } = leaderAndFollowers(net);
    net.crash(other);

    const batchesBefore = net.deliveryBatches;
    net.proposeAll(
      leader,
      Array.from({ length: 100 }, (_, i) => bytes(`entry ${i}`, 50)),
    );
    expect(net.appliedData(leader)).toHaveLength(100);
    expect(net.status(slow).lastIndex).toBe(net.status(leader).lastIndex);

    // A probe-free stream takes two round trips (the first append, then the rest of the window) and a
    // last hop for the commit index. One append per round trip would take 50.
    expect(net.deliveryBatches - batchesBefore).toBeLessThanOrEqual(6);
  });
});
