import { describe, expect, it } from "vitest";
import type { Message } from "../../src/core/index.js";
import { Network } from "./network.js";

/**
 * How chatty the protocol is. The classic lab suite allows a 3-node cluster 30 RPCs for its first
 * election, 42 RPCs for 10 agreements and 60 RPCs for an idle second (an RPC being a request and its
 * reply). We count requests and replies as separate messages, and hold ourselves to much less.
 * The defaults of the real server: a tick is 100 ms, a heartbeat every tick, an election timeout of 10.
 */
const ticksPerSecond = 10;

/** Requests only (what the lab counts as RPCs); their replies are the other half. */
function requests(messages: readonly Message[]): Message[] {
  return messages.filter((m) => !m.type.endsWith("Resp"));
}

describe("message counts", () => {
  it("spends 8 requests (16 messages) on a 3-node first election, the lab allows 30 RPCs", () => {
    const net = new Network([1, 2, 3]);
    const mark = net.mark();
    const leader = net.tickUntilLeader();
    net.deliver();

    // PreVote and vote to each of 2 peers, the leader's no-op, and the append that tells them it committed.
    const sent = net.sentSince(mark);
    expect(sent.every((m) => m.type !== "heartbeat")).toBe(true);
    expect(requests(sent)).toHaveLength(8);
    expect(sent).toHaveLength(16);
    for (const id of net.ids) expect(net.status(id).commit).toBe(net.status(leader).commit);
  });

  it("spends exactly one heartbeat and one reply per follower per heartbeat interval when idle", () => {
    for (const [size, heartbeatTicks] of [
      [3, 1],
      [5, 1],
      [3, 2],
    ] as const) {
      const net = new Network(
        Array.from({ length: size }, (_, i) => i + 1),
        { heartbeatTicks },
      );
      net.tickUntilLeader();
      net.tickAll(ticksPerSecond);

      const mark = net.mark();
      net.tickAll(ticksPerSecond);
      const heartbeats = ticksPerSecond / heartbeatTicks;
      const sent = net.sentSince(mark);
      expect(
        sent.filter((m) => m.type === "heartbeat"),
        `${size} nodes`,
      ).toHaveLength(heartbeats * (size - 1));
      expect(
        sent.filter((m) => m.type === "heartbeatResp"),
        `${size} nodes`,
      ).toHaveLength(heartbeats * (size - 1));
      // Nothing else: 20 requests for an idle second of a 3-node cluster, the lab allows 60 RPCs.
      expect(sent, `${size} nodes`).toHaveLength(2 * heartbeats * (size - 1));
    }
  });

  it("spends 4 requests per agreement one at a time (40 for 10, the lab allows 42 RPCs)", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    const mark = net.mark();
    for (let i = 0; i < 10; i++) {
      const result = net.propose(leader, `one at a time ${i}`);
      expect(result.ok).toBe(true);
    }
    // Per follower: the append with the entry, and the append that carries the new commit index.
    const sent = net.sentSince(mark);
    expect(requests(sent)).toHaveLength(10 * 2 * 2);
    expect(sent).toHaveLength(10 * 2 * 4);
    for (const id of net.ids) expect(net.appliedData(id)).toHaveLength(10);
  });

  it("spends the same 8 messages on 100 proposals made together as on one", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    const mark = net.mark();
    net.proposeAll(
      leader,
      Array.from({ length: 100 }, (_, i) => `batched ${i}`),
    );
    expect(net.sentSince(mark)).toHaveLength(8);
    for (const id of net.ids) expect(net.appliedData(id)).toHaveLength(100);
  });

  it("adds no messages of its own for proposals made between heartbeats under steady load", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    const mark = net.mark();
    for (let tick = 0; tick < ticksPerSecond; tick++) {
      net.proposeAll(
        leader,
        Array.from({ length: 10 }, (_, i) => `tick ${tick} proposal ${i}`),
      );
      net.tickAll(1);
    }
    // Each tick: one batch (8 messages) and one heartbeat round (4 messages), for 100 entries a second.
    expect(net.sentSince(mark)).toHaveLength(ticksPerSecond * 12);
    for (const id of net.ids) expect(net.appliedData(id)).toHaveLength(100);
  });
});
